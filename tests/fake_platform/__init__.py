"""A third platform, "fakedesk", built the way a real one is added: one client module with its
PlatformSpec, one sandbox module, one configuration block. tests/test_third_platform.py registers it
and proves the gateway takes it with no edit to server/."""
