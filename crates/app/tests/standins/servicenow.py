#!/usr/bin/env python3
"""A strict local stand-in for ServiceNow's Table API: incidents and their journal.

Shaped as ServiceNow's published Table API (/api/now/table/incident, sys_journal_field), with
ServiceNow's default incident rules: priority computed from impact x urgency, resolving or
closing needs a resolution code and notes, On Hold needs a reason. It is stricter than a real
instance so that a client's mistakes surface: an unknown field (in a body, in sysparm_fields or
in a query) is refused with 400 where an instance ignores it; priority may not be written;
sysparm_query understands only what opsdesk sends (field=value, IN, >= with
javascript:gs.minutesAgoStart(N), ORDERBY, ORDERBYDESC, joined by ^) and refuses the rest,
absolute dates among them (an instance reads those in the session user's time zone).
assignment_group takes only the sys_id of a group given with --group.

Control, without authentication:
  GET  /_standin/health
  POST /_standin/fail   {"status": 429|503, "count": n, "retry_after": s, "user": "opsdesk"}
                        the next n API calls (of that user only, when given) fail so; count 0
                        ends an outage
  POST /_standin/clock  {"advance": seconds}  moves the stand-in's clock forward

Each refused request is printed to stderr with why.
"""

import argparse
import base64
import email.utils
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SHORT_DESCRIPTION_MAX = 160
# The sys_ids of the instance's groups (--group): assignment_group takes only these.
GROUPS = set()

# The incident fields this stand-in knows (a real incident has many more).
INCIDENT_FIELDS = {
    "sys_id", "number", "short_description", "description", "state", "incident_state",
    "impact", "urgency", "priority", "correlation_id", "correlation_display", "comments",
    "work_notes", "close_code", "close_notes", "hold_reason", "active", "category",
    "caller_id", "assigned_to", "assignment_group", "opened_at", "resolved_at", "closed_at",
    "sys_created_on", "sys_updated_on", "sys_created_by", "sys_updated_by", "sys_mod_count",
    "sys_class_name",
}
# What a client may write; the rest is the instance's to set.
INCIDENT_WRITABLE = {
    "short_description", "description", "state", "impact", "urgency", "correlation_id",
    "correlation_display", "comments", "work_notes", "close_code", "close_notes",
    "hold_reason", "category", "caller_id", "assigned_to", "assignment_group",
}
JOURNAL_FIELDS = {
    "sys_id", "element", "element_id", "name", "value", "sys_created_on", "sys_created_by",
}
TABLES = {"incident": INCIDENT_FIELDS, "sys_journal_field": JOURNAL_FIELDS}
DATE_FIELDS = {"sys_created_on", "sys_updated_on", "opened_at", "resolved_at", "closed_at"}

STATES = {"1", "2", "3", "6", "7", "8"}
HOLD_REASONS = {"1", "3", "4", "5"}
# ServiceNow's default priority lookup: (impact, urgency) -> priority.
PRIORITY = {
    ("1", "1"): "1", ("1", "2"): "2", ("2", "1"): "2", ("1", "3"): "3", ("2", "2"): "3",
    ("3", "1"): "3", ("2", "3"): "4", ("3", "2"): "4", ("3", "3"): "5",
}
KNOWN_PARAMS = {
    "sysparm_query", "sysparm_fields", "sysparm_limit", "sysparm_offset",
    "sysparm_display_value", "sysparm_exclude_reference_link", "sysparm_no_count",
    "sysparm_suppress_pagination_header",
}


class Refused(Exception):
    def __init__(self, status, message, detail):
        super().__init__(detail)
        self.status = status
        self.message = message
        self.detail = detail


def bad(detail):
    return Refused(400, "Invalid request", detail)


class State:
    def __init__(self, users, tokens):
        self.lock = threading.Lock()
        self.users = users
        self.tokens = tokens
        self.offset = 0.0
        self.incidents = {}  # sys_id -> record
        self.journal = []  # rows of sys_journal_field
        self.next_number = 10001
        self.fail = None  # {"status", "count", "retry_after", "user"}

    def now(self):
        return time.time() + self.offset

    def stamp(self):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.now()))


STATE = None


def log(line):
    print(line, file=sys.stderr, flush=True)


def parse_query(table, query, now):
    """An encoded query as (conditions, order): only the forms opsdesk sends."""
    fields = TABLES[table]
    conditions, order = [], []
    if not query:
        return conditions, order
    for term in query.split("^"):
        if term.startswith("ORDERBYDESC") or term.startswith("ORDERBY"):
            desc = term.startswith("ORDERBYDESC")
            name = term[len("ORDERBYDESC"):] if desc else term[len("ORDERBY"):]
            if name not in fields:
                raise bad(f"ORDERBY: {table} has no field {name!r}")
            order.append((name, desc))
            continue
        m = re.fullmatch(r"([a-z_0-9]+)(>=|IN|=)(.*)", term, re.S)
        if not m:
            raise bad(f"sysparm_query: {term!r} is not a condition this stand-in supports "
                      "(field=value, fieldINa,b, field>=javascript:gs.minutesAgoStart(N), "
                      "ORDERBY, ORDERBYDESC; no ^OR, ^NQ or other operators)")
        name, op, value = m.groups()
        if name not in fields:
            raise bad(f"sysparm_query: {table} has no field {name!r}")
        if op == "IN":
            conditions.append((name, "IN", set(value.split(","))))
        elif op == ">=":
            if name not in DATE_FIELDS:
                raise bad(f"sysparm_query: >= is supported on date fields only, not {name!r}")
            rel = re.fullmatch(r"javascript:gs\.minutesAgoStart\((\d+)\)", value)
            if not rel:
                raise bad(f"sysparm_query: {value!r}: only javascript:gs.minutesAgoStart(N) "
                          "is supported after >= (an absolute date or gs.dateGenerate is read "
                          "in the session user's time zone by a real instance)")
            start = now - int(rel.group(1)) * 60
            start -= start % 60
            bound = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start))
            conditions.append((name, ">=", bound))
        else:
            if value.startswith("javascript:"):
                raise bad(f"sysparm_query: {value!r}: scripts are supported after >= only")
            conditions.append((name, "=", value))
    return conditions, order


def matches(record, conditions):
    for name, op, value in conditions:
        have = record.get(name, "")
        if op == "=" and have != value:
            return False
        if op == "IN" and have not in value:
            return False
        if op == ">=" and have < value:  # "YYYY-MM-DD HH:MM:SS" orders as text
            return False
    return True


def sort_records(records, order):
    for name, desc in reversed(order):
        records.sort(key=lambda r: r.get(name, ""), reverse=desc)
    return records


def selected(table, record, fields):
    shown = {k: v for k, v in record.items() if k in TABLES[table]}
    if table == "incident":
        # Journal fields are write-only: they read as empty.
        shown["comments"] = ""
        shown["work_notes"] = ""
    if fields is None:
        return shown
    return {f: shown.get(f, "") for f in fields}


def check_params(params, single):
    for name in params:
        if name not in KNOWN_PARAMS:
            raise bad(f"{name!r}: name-value filters and other parameters are not supported "
                      "by this stand-in; use sysparm_query")
    if params.get("sysparm_display_value", ["false"])[0] != "false":
        raise bad("sysparm_display_value: only false (raw values, UTC times) is supported")
    if single and ("sysparm_query" in params or "sysparm_limit" in params):
        raise bad("sysparm_query and sysparm_limit are for lists")


def fields_param(table, params):
    raw = params.get("sysparm_fields", [""])[0]
    if not raw:
        return None
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for f in fields:
        if f not in TABLES[table]:
            raise bad(f"sysparm_fields: {table} has no field {f!r}")
    return fields


def int_param(params, name, default):
    raw = params.get(name, [str(default)])[0]
    if not re.fullmatch(r"\d+", raw):
        raise bad(f"{name} must be a number, not {raw!r}")
    return int(raw)


def apply_write(incident, body, user, st, creating):
    """Checks and applies a body to an incident (a copy), as ServiceNow's rules would."""
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    for name, value in body.items():
        if name == "priority":
            raise bad("priority is computed from impact and urgency: send those")
        if name not in INCIDENT_FIELDS:
            raise bad(f"incident has no field {name!r}")
        if name not in INCIDENT_WRITABLE:
            raise bad(f"{name} is set by the instance and cannot be written")
        if not isinstance(value, str):
            raise bad(f"{name}: values are strings")
    new = dict(incident)
    journal = []
    for name, value in body.items():
        if name in ("comments", "work_notes"):
            if value.strip():
                journal.append((name, value))
            continue
        new[name] = value
    if len(new["short_description"]) > SHORT_DESCRIPTION_MAX:
        raise bad(f"short_description is at most {SHORT_DESCRIPTION_MAX} characters")
    if new["state"] not in STATES:
        raise bad(f"state {new['state']!r} is not an incident state")
    for f in ("impact", "urgency"):
        if new[f] not in ("1", "2", "3"):
            raise bad(f"{f} must be 1, 2 or 3")
    if new["assignment_group"] and new["assignment_group"] not in GROUPS:
        raise bad(f"assignment_group {new['assignment_group']!r} is not the sys_id of a group")
    if new["hold_reason"] and new["hold_reason"] not in HOLD_REASONS:
        raise bad(f"hold_reason {new['hold_reason']!r} is not an on-hold reason")
    missing = []
    if new["state"] in ("6", "7"):
        if not new["close_code"].strip():
            missing.append("Resolution code")
        if not new["close_notes"].strip():
            missing.append("Resolution notes")
    if new["state"] == "3" and not new["hold_reason"]:
        missing.append("On hold reason")
    if missing:
        raise Refused(403, "Operation Failed",
                      "Data Policy Exception: \n The following fields are mandatory: "
                      + ", ".join(missing))
    stamp = st.stamp()
    if new["state"] != "3":
        new["hold_reason"] = ""
    if new["state"] in ("6", "7") and incident.get("state") not in ("6", "7"):
        new["resolved_at"] = stamp
    if new["state"] == "7":
        new["closed_at"] = stamp
    new["active"] = "false" if new["state"] in ("7", "8") else "true"
    new["incident_state"] = new["state"]
    new["priority"] = PRIORITY[(new["impact"], new["urgency"])]
    new["sys_updated_on"] = stamp
    new["sys_updated_by"] = user
    if not creating:
        new["sys_mod_count"] = str(int(new["sys_mod_count"]) + 1)
    rows = [{
        "sys_id": uuid.uuid4().hex,
        "element": element,
        "element_id": new["sys_id"],
        "name": "incident",
        "value": value,
        "sys_created_on": stamp,
        "sys_created_by": user,
    } for element, value in journal]
    return new, rows


def blank_incident(st, user):
    stamp = st.stamp()
    number = f"INC{st.next_number:07d}"
    st.next_number += 1
    return {
        "sys_id": uuid.uuid4().hex, "number": number, "short_description": "",
        "description": "", "state": "1", "incident_state": "1", "impact": "3",
        "urgency": "3", "priority": "5", "correlation_id": "", "correlation_display": "",
        "close_code": "", "close_notes": "", "hold_reason": "", "active": "true",
        "category": "inquiry", "caller_id": "", "assigned_to": "", "assignment_group": "",
        "opened_at": stamp, "resolved_at": "", "closed_at": "", "sys_created_on": stamp,
        "sys_updated_on": stamp, "sys_created_by": user, "sys_updated_by": user,
        "sys_mod_count": "0", "sys_class_name": "incident",
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ServiceNow-standin"

    def log_message(self, fmt, *args):
        pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(STATE.now() if timestamp is None else timestamp,
                                      usegmt=True)

    def answer(self, status, body, headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, status, message, detail, headers=()):
        why = " ".join(detail.split())
        log(f"refused {self.command} {self.path}: {status} {message}: {why}")
        self.answer(status, {"error": {"message": message, "detail": detail},
                             "status": "failure"}, headers)

    def body(self):
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError as e:
            raise bad(f"the body is not JSON: {e}")

    def user(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return name if STATE.users.get(name) == password and password else None
        if auth.startswith("Bearer "):
            return STATE.tokens.get(auth[7:].strip())
        return None

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urlsplit(self.path)
        # Read whole first, so that a refusal leaves the connection ready for the next call.
        length = int(self.headers.get("Content-Length") or 0)
        self.raw = self.rfile.read(length) if length else b""
        try:
            if url.path.startswith("/_standin/"):
                return self.control(method, url.path)
            self.api(method, url)
        except Refused as e:
            self.refuse(e.status, e.message, e.detail)

    def control(self, method, path):
        if path == "/_standin/health" and method == "GET":
            return self.answer(200, {"ok": True})
        body = self.body() or {}
        with STATE.lock:
            if path == "/_standin/fail" and method == "POST":
                count = int(body.get("count", 0))
                STATE.fail = None if count <= 0 else {
                    "status": int(body.get("status", 503)),
                    "count": count,
                    "retry_after": int(body.get("retry_after", 1)),
                    "user": body.get("user"),
                }
                return self.answer(200, {"fail": STATE.fail})
            if path == "/_standin/clock" and method == "POST":
                STATE.offset += float(body.get("advance", 0))
                return self.answer(200, {"now": STATE.stamp()})
        raise Refused(404, "Not found", f"no control endpoint {method} {path}")

    def injected(self, user):
        with STATE.lock:
            f = STATE.fail
            if not f or (f["user"] and f["user"] != user):
                return False
            f["count"] -= 1
            if f["count"] <= 0:
                STATE.fail = None
        if f["status"] == 429:
            self.refuse(429, "Rate limit exceeded",
                        f"injected: wait {f['retry_after']} s",
                        [("Retry-After", str(f["retry_after"]))])
        else:
            self.refuse(f["status"], "Service unavailable", "injected outage")
        return True

    def api(self, method, url):
        user = self.user()
        if user is None:
            raise Refused(401, "User Not Authenticated", "Required to provide Auth information")
        if self.injected(user):
            return
        m = re.fullmatch(r"/api/now/table/([a-z_0-9]+)(?:/([^/]+))?", url.path)
        if not m:
            raise Refused(400, "Requested URI does not represent any resource",
                          f"no resource at {url.path}")
        table, sys_id = m.groups()
        if table not in TABLES:
            raise Refused(400, "Invalid table", f"{table} is not a table this stand-in has")
        params = parse_qs(url.query, keep_blank_values=True)
        check_params(params, sys_id is not None)
        fields = fields_param(table, params)
        body = self.body()
        with STATE.lock:
            if method == "GET" and sys_id is None:
                return self.list(table, params, fields)
            if method == "GET":
                return self.answer(200, {"result": selected(table, self.find(table, sys_id),
                                                            fields)})
            if table != "incident":
                raise Refused(403, "Operation Failed",
                              f"{table} is written by the instance, not through the Table API")
            if method == "POST" and sys_id is None:
                incident, rows = apply_write(blank_incident(STATE, user), body, user, STATE,
                                             True)
                STATE.incidents[incident["sys_id"]] = incident
                STATE.journal.extend(rows)
                return self.answer(201, {"result": selected(table, incident, fields)},
                                   [("Location", f"/api/now/table/incident/{incident['sys_id']}")])
            if method in ("PATCH", "PUT") and sys_id is not None:
                current = self.find(table, sys_id)
                incident, rows = apply_write(current, body or {}, user, STATE, False)
                STATE.incidents[sys_id] = incident
                STATE.journal.extend(rows)
                return self.answer(200, {"result": selected(table, incident, fields)})
        raise Refused(405, "Method not supported", f"{method} {url.path}")

    def find(self, table, sys_id):
        record = (STATE.incidents.get(sys_id) if table == "incident"
                  else next((j for j in STATE.journal if j["sys_id"] == sys_id), None))
        if record is None:
            raise Refused(404, "No Record found",
                          "Record doesn't exist or ACL restricts the record retrieval")
        return record

    def list(self, table, params, fields):
        conditions, order = parse_query(table, params.get("sysparm_query", [""])[0],
                                        STATE.now())
        limit = int_param(params, "sysparm_limit", 10000)
        offset = int_param(params, "sysparm_offset", 0)
        rows = STATE.incidents.values() if table == "incident" else STATE.journal
        found = sort_records([r for r in rows if matches(r, conditions)], order)
        page = [selected(table, r, fields) for r in found[offset:offset + limit]]
        self.answer(200, {"result": page}, [("X-Total-Count", str(len(found)))])


def main():
    global STATE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", action="append", default=[], help="name:password")
    p.add_argument("--token", action="append", default=[], help="name:bearer-token")
    p.add_argument("--group", action="append", default=[], help="the sys_id of a sys_user_group")
    args = p.parse_args()
    GROUPS.update(args.group)
    users = dict(u.split(":", 1) for u in args.user)
    tokens = {t.split(":", 1)[1]: t.split(":", 1)[0] for t in args.token}
    STATE = State(users, tokens)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    log(f"servicenow stand-in on 127.0.0.1:{args.port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
