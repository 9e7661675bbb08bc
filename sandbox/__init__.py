"""In-memory emulations of the ITSM platforms for development, tests, benchmarks and fault drills.

An independent oracle: this package imports nothing of the gateway. Start the registered platforms
with `await start_sandbox(SandboxConfig(...))`; each also serves /_sandbox/ control endpoints
(faults, stats, reset) that need no credentials and are never faulted.
"""

from sandbox.config import PlatformSandbox, SandboxConfig, SandboxLimits, TlsFiles
from sandbox.faults import FaultSettings, FaultSettingsError
from sandbox.platforms import register, registered, unregister
from sandbox.runner import RunningSandbox, start_sandbox
from sandbox.spec import SandboxPlatform

__all__ = [
    "FaultSettings",
    "FaultSettingsError",
    "PlatformSandbox",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxLimits",
    "SandboxPlatform",
    "TlsFiles",
    "register",
    "registered",
    "start_sandbox",
    "unregister",
]
