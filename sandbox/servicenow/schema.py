"""The incident table as the sandbox knows it: fields, defaults, references and choice labels.

Field names and defaults follow a base-system instance, so responses carry the same keys a real
instance returns and clients that read e.g. `sys_domain` or `made_sla` find them.
"""

from __future__ import annotations

# Default value of every field on a new incident; "" for empty. Alphabetical, like the instance's
# JSON. sys_id, number, timestamps and users are filled in at insert.
INCIDENT_DEFAULTS: dict[str, str] = {
    "active": "true",
    "activity_due": "",
    "additional_assignee_list": "",
    "approval": "not requested",
    "approval_history": "",
    "approval_set": "",
    "assigned_to": "",
    "assignment_group": "",
    "business_duration": "",
    "business_impact": "",
    "business_service": "",
    "business_stc": "",
    "calendar_duration": "",
    "calendar_stc": "",
    "caller_id": "",
    "category": "inquiry",
    "cause": "",
    "caused_by": "",
    "child_incidents": "0",
    "close_code": "",
    "close_notes": "",
    "closed_at": "",
    "closed_by": "",
    "cmdb_ci": "",
    "comments": "",
    "comments_and_work_notes": "",
    "company": "",
    "contact_type": "",
    "contract": "",
    "correlation_display": "",
    "correlation_id": "",
    "description": "",
    "due_date": "",
    "escalation": "0",
    "expected_start": "",
    "follow_up": "",
    "group_list": "",
    "hold_reason": "",
    "impact": "3",
    "incident_state": "1",
    "knowledge": "false",
    "location": "",
    "made_sla": "true",
    "notify": "1",
    "number": "",
    "opened_at": "",
    "opened_by": "",
    "order": "",
    "parent": "",
    "parent_incident": "",
    "priority": "5",
    "problem_id": "",
    "reassignment_count": "0",
    "reopen_count": "0",
    "reopened_by": "",
    "reopened_time": "",
    "resolved_at": "",
    "resolved_by": "",
    "rfc": "",
    "service_offering": "",
    "severity": "3",
    "short_description": "",
    "sla_due": "",
    "state": "1",
    "subcategory": "",
    "sys_class_name": "incident",
    "sys_created_by": "",
    "sys_created_on": "",
    "sys_domain": "global",
    "sys_domain_path": "/",
    "sys_id": "",
    "sys_mod_count": "0",
    "sys_tags": "",
    "sys_updated_by": "",
    "sys_updated_on": "",
    "time_worked": "",
    "upon_approval": "proceed",
    "upon_reject": "cancel",
    "urgency": "3",
    "user_input": "",
    "watch_list": "",
    "work_end": "",
    "work_notes": "",
    "work_notes_list": "",
    "work_start": "",
}

# Reference field -> referenced table, for {"link", "value"} rendering.
REFERENCE_TABLES: dict[str, str] = {
    "assigned_to": "sys_user",
    "assignment_group": "sys_user_group",
    "business_service": "cmdb_ci_service",
    "caller_id": "sys_user",
    "caused_by": "change_request",
    "closed_by": "sys_user",
    "cmdb_ci": "cmdb_ci",
    "company": "core_company",
    "contract": "ast_contract",
    "location": "cmn_location",
    "opened_by": "sys_user",
    "parent": "task",
    "parent_incident": "incident",
    "problem_id": "problem",
    "reopened_by": "sys_user",
    "resolved_by": "sys_user",
    "rfc": "change_request",
    "service_offering": "service_offering",
    "sys_domain": "sys_user_group",
}

_IMPACT_LABELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
_STATE_LABELS = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}

# Choice field -> value -> display label.
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "state": _STATE_LABELS,
    "incident_state": _STATE_LABELS,
    "impact": _IMPACT_LABELS,
    "urgency": _IMPACT_LABELS,
    "severity": _IMPACT_LABELS,
    "priority": {
        "1": "1 - Critical",
        "2": "2 - High",
        "3": "3 - Moderate",
        "4": "4 - Low",
        "5": "5 - Planning",
    },
    "category": {
        "inquiry": "Inquiry / Help",
        "software": "Software",
        "hardware": "Hardware",
        "network": "Network",
        "database": "Database",
    },
    "contact_type": {
        "email": "Email",
        "phone": "Phone",
        "self-service": "Self-service",
        "walk-in": "Walk-in",
        "virtual_agent": "Virtual Agent",
        "monitoring": "Monitoring",
    },
    "escalation": {"0": "Normal", "1": "Moderate", "2": "High", "3": "Overdue"},
    "notify": {"1": "Do Not Notify", "2": "Send Email"},
    "hold_reason": {
        "1": "Awaiting Caller",
        "3": "Awaiting Problem",
        "4": "Awaiting Vendor",
        "5": "Awaiting Change",
    },
    "approval": {"not requested": "Not Yet Requested"},
    "upon_approval": {"proceed": "Proceed to Next Task"},
    "upon_reject": {"cancel": "Cancel all future Tasks"},
}

# Sorted numerically by ORDERBY, as integer columns are on the instance.
INTEGER_FIELDS = frozenset(
    {
        "state",
        "incident_state",
        "impact",
        "urgency",
        "priority",
        "severity",
        "escalation",
        "notify",
        "reassignment_count",
        "reopen_count",
        "sys_mod_count",
        "child_incidents",
    }
)

BOOLEAN_FIELDS = frozenset({"active", "knowledge", "made_sla"})

# Journal fields: write-only through the Table API (they read back as ""), kept as entries.
JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
JOURNAL_LABELS = {"work_notes": "Work notes", "comments": "Additional comments"}

# Calculated by the instance; a client cannot set them.
READ_ONLY_FIELDS = frozenset({"comments_and_work_notes", "priority"})

# Priority lookup rule: (impact, urgency) -> priority.
PRIORITY_MATRIX: dict[tuple[str, str], str] = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("1", "3"): "3",
    ("2", "1"): "2",
    ("2", "2"): "3",
    ("2", "3"): "4",
    ("3", "1"): "3",
    ("3", "2"): "4",
    ("3", "3"): "5",
}

RESOLVED_STATES = frozenset({"6", "7"})
CLOSED_STATE = "7"  # final: a Closed incident cannot be reopened, only replaced by a new one
INACTIVE_STATES = frozenset({"7", "8"})
ON_HOLD_STATE = "3"

# Data policies of a base instance: state -> mandatory fields with their labels.
MANDATORY_BY_STATE: dict[str, tuple[tuple[str, str], ...]] = {
    "6": (("close_code", "Resolution code"), ("close_notes", "Resolution notes")),
    "7": (("close_code", "Resolution code"), ("close_notes", "Resolution notes")),
    "3": (("hold_reason", "On hold reason"),),
}


def is_known_field(name: str) -> bool:
    """Base fields plus u_ custom fields: instances add those, and clients send them."""
    return name in INCIDENT_DEFAULTS or (name.startswith("u_") and name[2:].isidentifier())


def choice_label(field: str, value: str) -> str:
    return CHOICE_LABELS.get(field, {}).get(value, value)


def choice_value(field: str, text: str) -> str:
    """The stored value for a display label (sysparm_input_display_value=true); unknown text as is."""
    for value, label in CHOICE_LABELS.get(field, {}).items():
        if label.casefold() == text.casefold():
            return value
    return text
