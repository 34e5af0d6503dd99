//! The ServiceNow connector against the strict local stand-in (tests/standins/servicenow.py).
