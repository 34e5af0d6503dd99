#!/usr/bin/env python3
"""A strict local stand-in of Jira Cloud's platform REST API v3, for opsdesk's connector tests.

It answers the calls the connector makes (and the ones a test makes as another user) in the
shapes Jira Cloud publishes, and refuses what Jira Cloud would refuse: missing or wrong basic
authentication (401), unknown fields, invalid Atlassian Document Format, a summary over 255
characters or with a line break, an unknown project, priority or issue type, a transition the
issue does not have, `status` set by an edit, JQL it does not know (400), and the removed
`/rest/api/3/search` (410). One line per refused request goes to stderr, with why.

Projects by `--project` (repeatable, SUP when none), one workflow: To Do, In Progress, Done,
each reachable from any other by a global transition (11, 21, 31). Priorities Highest (1) to
Lowest (5), or the scheme `--priorities` names. Issue types Task, Bug, Story, Incident and
Service Request.

Control endpoints (no authentication) under /_standin/:
  GET  health
  POST fail     {"status": 429|503, "count": n, "retry_after": s, "user": email?}
                the next n API calls (of that user only, when given) answer so; count 0 clears
  POST webhook  {"url": ..., "secret": ...} an admin webhook, called on issue created and
                updated and comment created, signed with X-Hub-Signature: sha256=<hmac>

Python 3.11 standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Jira formats times in the user's time zone; a zone other than UTC catches a client that
# assumes one.
ZONE = timezone(timedelta(hours=1))
SUMMARY_MAX = 255
RICH_TEXT_MAX = 32767

STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
# name -> (status id, category)
STATUSES = {
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "Done": ("10001", "done"),
}
# transition id -> target status
TRANSITIONS = {"11": "To Do", "21": "In Progress", "31": "Done"}
PRIORITIES = ["Highest", "High", "Medium", "Low", "Lowest"]
ISSUE_TYPES = {
    "Task": "10001", "Bug": "10002", "Story": "10003", "Incident": "10004", "Service Request": "10005",
}

CREATE_FIELDS = {"project", "summary", "description", "issuetype", "priority", "labels"}
EDIT_FIELDS = {"summary", "description", "priority", "labels"}

# Atlassian Document Format: the nodes this stand-in knows, block and inline.
BLOCK_NODES = {
    "paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
    "blockquote", "rule", "panel",
}
INLINE_NODES = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status"}
MARKS = {"strong", "em", "code", "link", "strike", "underline", "subsup", "textColor"}
LUCENE_RESERVED = set('[]{}()^*?:\\+!~')


class Refusal(Exception):
    def __init__(self, status, messages=None, errors=None, why=""):
        super().__init__(why)
        self.status = status
        self.messages = messages or []
        self.errors = errors or {}
        self.why = why or "; ".join(self.messages + [f"{k}: {v}" for k, v in self.errors.items()])


def now_ms():
    return int(time.time() * 1000)


def jira_time(ms):
    t = datetime.fromtimestamp(ms / 1000, ZONE)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + t.strftime("%z")


class Jira:
    def __init__(self, base, projects, users):
        self.lock = threading.RLock()
        self.base = base
        self.projects = [
            {"id": str(10000 + i), "key": key, "name": f"{key} project"} for i, key in enumerate(projects)
        ]
        self.users = users  # email -> {accountId, displayName, token, email}
        self.issues = {}  # id -> issue
        self.next_issue = 10000
        self.next_number = 1
        self.next_comment = 10000
        self.next_history = 10000
        self.fail = None
        self.webhooks = []

    # --- shapes -----------------------------------------------------------------------

    def user_json(self, account_id):
        for u in self.users.values():
            if u["accountId"] == account_id:
                return {
                    "self": f"{self.base}/rest/api/3/user?accountId={account_id}",
                    "accountId": account_id,
                    "avatarUrls": {"48x48": f"{self.base}/avatar/{account_id}.png"},
                    "displayName": u["displayName"],
                    "active": True,
                    "timeZone": "Europe/Berlin",
                    "accountType": "atlassian",
                }
        return None

    def status_json(self, name):
        sid, cat = STATUSES[name]
        category = dict(STATUS_CATEGORIES[cat])
        category["self"] = f"{self.base}/rest/api/3/statuscategory/{category['id']}"
        return {
            "self": f"{self.base}/rest/api/3/status/{sid}",
            "description": "",
            "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": category,
        }

    def priority_json(self, name):
        pid = str(PRIORITIES.index(name) + 1)
        return {
            "self": f"{self.base}/rest/api/3/priority/{pid}",
            "iconUrl": f"{self.base}/images/icons/priorities/{name.lower()}.svg",
            "name": name,
            "id": pid,
        }

    def project_of(self, ref):
        """A project by key, id or name, or None."""
        return next((p for p in self.projects if ref in (p["key"], p["id"], p["name"])), None)

    def project_json(self, key):
        p = self.project_of(key)
        return {
            "self": f"{self.base}/rest/api/3/project/{p['id']}",
            "id": p["id"],
            "key": p["key"],
            "name": p["name"],
            "projectTypeKey": "software",
            "simplified": False,
        }

    def issue_fields(self, issue):
        return {
            "summary": issue["summary"],
            "description": issue["description"],
            "status": self.status_json(issue["status"]),
            "priority": self.priority_json(issue["priority"]),
            "issuetype": {
                "self": f"{self.base}/rest/api/3/issuetype/{ISSUE_TYPES[issue['issuetype']]}",
                "id": ISSUE_TYPES[issue["issuetype"]],
                "name": issue["issuetype"],
                "subtask": False,
                "hierarchyLevel": 0,
            },
            "project": self.project_json(issue["project"]),
            "creator": self.user_json(issue["creator"]),
            "reporter": self.user_json(issue["creator"]),
            "created": jira_time(issue["created"]),
            "updated": jira_time(issue["updated"]),
            "labels": issue["labels"],
            "resolution": None,
        }

    def issue_json(self, issue, fields=None, expand=()):
        all_fields = self.issue_fields(issue)
        if fields is None or "*all" in fields or "*navigable" in fields:
            chosen = all_fields
        else:
            chosen = {f: all_fields[f] for f in fields if f in all_fields}
        out = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue["id"],
            "self": f"{self.base}/rest/api/3/issue/{issue['id']}",
            "key": issue["key"],
            "fields": chosen,
        }
        if "changelog" in expand:
            histories = [self.history_json(h) for h in issue["changelog"]]
            out["changelog"] = {
                "startAt": 0,
                "maxResults": min(100, len(histories)),
                "total": len(histories),
                "histories": histories[:100],
            }
        return out

    def history_json(self, h):
        return {
            "id": h["id"],
            "author": self.user_json(h["author"]),
            "created": jira_time(h["created"]),
            "items": h["items"],
        }

    def comment_json(self, issue, c, expand=()):
        out = {
            "self": f"{self.base}/rest/api/3/issue/{issue['id']}/comment/{c['id']}",
            "id": c["id"],
            "author": self.user_json(c["author"]),
            "body": c["body"],
            "updateAuthor": self.user_json(c["author"]),
            "created": jira_time(c["created"]),
            "updated": jira_time(c["created"]),
            "jsdPublic": not c["internal"],
        }
        if "properties" in expand:
            out["properties"] = c["properties"]
        return out

    # --- lookups and checks -------------------------------------------------------------

    def issue(self, id_or_key):
        issue = self.issues.get(id_or_key)
        if issue is None:
            issue = next((i for i in self.issues.values() if i["key"] == id_or_key), None)
        if issue is None:
            raise Refusal(404, ["Issue does not exist or you do not have permission to see it."])
        return issue

    def check_adf(self, field, doc):
        def bad(why):
            raise Refusal(400, errors={field: "Operation value must be an Atlassian Document (see the Atlassian Document Format)"}, why=f"{field}: invalid ADF: {why}")

        if not isinstance(doc, dict):
            bad("not an object")
        if doc.get("type") != "doc" or doc.get("version") != 1:
            bad(f"type {doc.get('type')!r} version {doc.get('version')!r}, not doc 1")
        if set(doc) - {"type", "version", "content"}:
            bad(f"unknown keys {sorted(set(doc) - {'type', 'version', 'content'})}")
        content = doc.get("content")
        if not isinstance(content, list):
            bad("doc content is not a list")

        def node(n, inline):
            if not isinstance(n, dict):
                bad("a node is not an object")
            t = n.get("type")
            if set(n) - {"type", "content", "text", "attrs", "marks"}:
                bad(f"{t}: unknown keys {sorted(set(n) - {'type', 'content', 'text', 'attrs', 'marks'})}")
            if inline and t not in INLINE_NODES:
                bad(f"{t!r} is not an inline node here")
            if not inline and t not in BLOCK_NODES:
                bad(f"{t!r} is not a block node here")
            if t == "text":
                if not isinstance(n.get("text"), str):
                    bad("text is not a string")
                if n["text"] == "":
                    bad("empty text node")
                for m in n.get("marks", []):
                    if not isinstance(m, dict) or m.get("type") not in MARKS:
                        bad(f"unknown mark {m!r}")
                if "content" in n:
                    bad("a text node has content")
                return
            if "text" in n:
                bad(f"{t} carries text")
            if t in ("hardBreak", "rule", "mention", "emoji", "inlineCard", "date", "status"):
                if "content" in n:
                    bad(f"{t} has content")
                return
            children = n.get("content", [])
            if not isinstance(children, list):
                bad(f"{t} content is not a list")
            if t in ("paragraph", "heading", "codeBlock"):
                for c in children:
                    node(c, True)
                    if t == "codeBlock" and c.get("type") != "text":
                        bad("codeBlock holds text only")
            elif t in ("bulletList", "orderedList"):
                if not children:
                    bad(f"{t} without items")
                for c in children:
                    if not isinstance(c, dict) or c.get("type") != "listItem":
                        bad(f"{t} holds listItems only")
                    node(c, False)
            else:
                for c in children:
                    node(c, False)

        for n in content:
            node(n, False)
        if len(json.dumps(doc, ensure_ascii=False, separators=(",", ":"))) > RICH_TEXT_MAX:
            raise Refusal(400, errors={field: f"The entered text is too long. It exceeds the allowed limit of {RICH_TEXT_MAX} characters."})

    def check_summary(self, summary):
        if not isinstance(summary, str) or not summary.strip():
            raise Refusal(400, errors={"summary": "You must specify a summary of the issue."})
        if "\n" in summary or "\r" in summary:
            raise Refusal(400, errors={"summary": "The summary is invalid because it contains newline characters."})
        if len(summary) > SUMMARY_MAX:
            raise Refusal(400, errors={"summary": "Summary must be less than 255 characters."})

    def priority_of(self, value):
        if not isinstance(value, dict) or set(value) - {"name", "id"}:
            raise Refusal(400, errors={"priority": "Specify the priority by name or id."})
        if "id" in value and str(value["id"]) in {"1", "2", "3", "4", "5"}:
            return PRIORITIES[int(value["id"]) - 1]
        if value.get("name") in PRIORITIES:
            return value["name"]
        raise Refusal(400, errors={"priority": f"Specify a valid priority: {value!r} does not exist."})

    def unknown_fields(self, fields, allowed):
        extra = sorted(set(fields) - allowed)
        if extra:
            raise Refusal(400, errors={f: f"Field '{f}' cannot be set. It is not on the appropriate screen, or unknown." for f in extra})

    # --- changes ------------------------------------------------------------------------

    def record(self, issue, author, items, at):
        self.next_history += 1
        issue["changelog"].append({"id": str(self.next_history), "author": author, "created": at, "items": items})

    def create_issue(self, user, body):
        if not isinstance(body, dict) or set(body) - {"fields", "update", "properties"}:
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        fields = body.get("fields")
        if not isinstance(fields, dict):
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        self.unknown_fields(fields, CREATE_FIELDS)
        ref = fields.get("project")
        project = None
        if isinstance(ref, dict) and set(ref) <= {"key", "id"}:
            project = self.project_of(ref.get("key")) if "key" in ref else self.project_of(str(ref.get("id")))
        if project is None:
            raise Refusal(400, errors={"project": "Specify a valid project ID or key"})
        self.check_summary(fields.get("summary"))
        issuetype = fields.get("issuetype")
        if not isinstance(issuetype, dict):
            raise Refusal(400, errors={"issuetype": "Specify an issue type"})
        name = issuetype.get("name")
        if "id" in issuetype:
            name = next((n for n, i in ISSUE_TYPES.items() if i == str(issuetype["id"])), None)
        if name not in ISSUE_TYPES:
            raise Refusal(400, errors={"issuetype": "Specify a valid issue type"})
        priority = self.priority_of(fields["priority"]) if "priority" in fields else "Medium"
        description = fields.get("description")
        if description is not None:
            self.check_adf("description", description)
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(l, str) and l and " " not in l for l in labels):
            raise Refusal(400, errors={"labels": "Labels are strings without spaces."})
        at = now_ms()
        issue = {
            "id": str(self.next_issue),
            "key": f"{project['key']}-{self.next_number}",
            "project": project["key"],
            "summary": fields["summary"],
            "description": description,
            "status": "To Do",
            "priority": priority,
            "issuetype": name,
            "creator": user["accountId"],
            "created": at,
            "updated": at,
            "labels": labels,
            "comments": [],
            "changelog": [],
        }
        self.next_issue += 1
        self.next_number += 1
        self.issues[issue["id"]] = issue
        self.notify("jira:issue_created", user, issue, event_type="issue_created")
        return {"id": issue["id"], "key": issue["key"], "self": f"{self.base}/rest/api/3/issue/{issue['id']}"}

    def edit_issue(self, user, issue, body):
        if not isinstance(body, dict) or set(body) - {"fields", "update", "historyMetadata", "properties"}:
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        fields = body.get("fields", {})
        if not isinstance(fields, dict):
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        if body.get("update"):
            raise Refusal(400, ["This stand-in takes edits through fields only."])
        self.unknown_fields(fields, EDIT_FIELDS)
        items = []
        if "summary" in fields:
            self.check_summary(fields["summary"])
            if fields["summary"] != issue["summary"]:
                items.append({"field": "summary", "fieldtype": "jira", "fieldId": "summary",
                              "from": None, "fromString": issue["summary"],
                              "to": None, "toString": fields["summary"]})
        if "priority" in fields:
            priority = self.priority_of(fields["priority"])
            if priority != issue["priority"]:
                items.append({"field": "priority", "fieldtype": "jira", "fieldId": "priority",
                              "from": str(PRIORITIES.index(issue["priority"]) + 1), "fromString": issue["priority"],
                              "to": str(PRIORITIES.index(priority) + 1), "toString": priority})
        if "description" in fields and fields["description"] is not None:
            self.check_adf("description", fields["description"])
        if "labels" in fields:
            issue["labels"] = fields["labels"]
        if "summary" in fields:
            issue["summary"] = fields["summary"]
        if "priority" in fields:
            issue["priority"] = self.priority_of(fields["priority"])
        if "description" in fields:
            issue["description"] = fields["description"]
        at = now_ms()
        issue["updated"] = at
        if items:
            self.record(issue, user["accountId"], items, at)
        self.notify("jira:issue_updated", user, issue, event_type="issue_updated", items=items)

    def transitions(self, issue):
        out = []
        for tid, to in TRANSITIONS.items():
            # Global transitions lead into a status from any other; none loops back.
            if to == issue["status"]:
                continue
            out.append({
                "id": tid,
                "name": to,
                "to": self.status_json(to),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            })
        return out

    def transition(self, user, issue, body):
        if not isinstance(body, dict) or set(body) - {"transition", "fields", "update", "historyMetadata", "properties"}:
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        if body.get("fields") or body.get("update"):
            raise Refusal(400, ["The transitions of this workflow have no screen: no fields can be set."])
        t = body.get("transition")
        if not isinstance(t, dict) or "id" not in t:
            raise Refusal(400, ["Missing 'transition' identifier"])
        tid = str(t["id"])
        available = {x["id"]: x["name"] for x in self.transitions(issue)}
        if tid not in available:
            raise Refusal(400, [f"Transition id '{tid}' is not valid for this issue."])
        to = TRANSITIONS[tid]
        at = now_ms()
        frm = issue["status"]
        issue["status"] = to
        issue["updated"] = at
        self.record(issue, user["accountId"], [{
            "field": "status", "fieldtype": "jira", "fieldId": "status",
            "from": STATUSES[frm][0], "fromString": frm, "to": STATUSES[to][0], "toString": to,
        }], at)
        self.notify("jira:issue_updated", user, issue, event_type="issue_generic")

    def add_comment(self, user, issue, body):
        if not isinstance(body, dict) or set(body) - {"body", "visibility", "properties"}:
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        if "body" not in body:
            raise Refusal(400, errors={"comment": "Comment body can not be empty!"})
        self.check_adf("comment", body["body"])
        if not body["body"].get("content"):
            raise Refusal(400, errors={"comment": "Comment body can not be empty!"})
        if body.get("visibility") is not None:
            raise Refusal(400, errors={"visibility": "This stand-in has no groups or roles to restrict comments to."})
        properties = body.get("properties", [])
        if not isinstance(properties, list):
            raise Refusal(400, ["properties must be a list of {key, value}"])
        for p in properties:
            if not isinstance(p, dict) or set(p) != {"key", "value"} or not isinstance(p["key"], str) or not p["key"]:
                raise Refusal(400, ["Each comment property is {\"key\": ..., \"value\": ...}."])
            if len(p["key"]) > 255:
                raise Refusal(400, ["The property key is longer than 255 characters."])
        internal = any(
            p["key"] == "sd.public.comment" and isinstance(p["value"], dict) and p["value"].get("internal") is True
            for p in properties
        )
        self.next_comment += 1
        at = now_ms()
        c = {
            "id": str(self.next_comment),
            "author": user["accountId"],
            "body": body["body"],
            "created": at,
            "properties": properties,
            "internal": internal,
        }
        issue["comments"].append(c)
        issue["updated"] = at
        self.notify("comment_created", user, issue, comment=c)
        self.notify("jira:issue_updated", user, issue, event_type="issue_commented", comment=c)
        return self.comment_json(issue, c, ("properties",))

    # --- JQL ----------------------------------------------------------------------------

    def search(self, body):
        allowed = {"jql", "fields", "maxResults", "nextPageToken", "expand", "properties", "fieldsByKeys", "reconcileIssues"}
        if not isinstance(body, dict) or set(body) - allowed:
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."],
                          why=f"unknown keys {sorted(set(body) - allowed) if isinstance(body, dict) else body!r}")
        jql = body.get("jql")
        if not isinstance(jql, str):
            raise Refusal(400, ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."])
        fields = body.get("fields", ["id"])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise Refusal(400, ["fields is a list of field names"])
        max_results = body.get("maxResults", 50)
        if not isinstance(max_results, int) or max_results < 0:
            raise Refusal(400, ["maxResults is a number"])
        max_results = min(max_results, 100)
        match, order = parse_jql(jql, self)
        found = [i for i in sorted(self.issues.values(), key=lambda i: int(i["id"])) if match(i)]
        if order is not None:
            field, desc = order
            found.sort(key=lambda i: (i[field], int(i["id"])), reverse=desc)
        start = 0
        token = body.get("nextPageToken")
        if token is not None:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
                if decoded["jql"] != jql:
                    raise ValueError("another query")
                start = int(decoded["at"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise Refusal(400, ["The provided next page token is invalid or expired."])
        page = found[start:start + max_results]
        out = {"issues": [self.issue_json(i, fields) for i in page], "isLast": start + max_results >= len(found)}
        if not out["isLast"]:
            out["nextPageToken"] = base64.urlsafe_b64encode(
                json.dumps({"jql": jql, "at": start + max_results}).encode()).decode()
        return out

    # --- webhooks -----------------------------------------------------------------------

    def notify(self, event, user, issue, event_type=None, items=None, comment=None):
        if not self.webhooks:
            return
        body = {"timestamp": now_ms(), "webhookEvent": event}
        if event.startswith("jira:"):
            body["issue_event_type_name"] = event_type
            body["user"] = self.user_json(user["accountId"])
            body["issue"] = self.issue_json(issue)
            if items:
                body["changelog"] = {"id": issue["changelog"][-1]["id"] if issue["changelog"] else "0", "items": items}
        else:
            body["comment"] = self.comment_json(issue, comment, ("properties",))
            body["issue"] = {
                "id": issue["id"],
                "self": f"{self.base}/rest/api/3/issue/{issue['id']}",
                "key": issue["key"],
                "fields": {k: v for k, v in self.issue_fields(issue).items() if k in ("summary", "status", "priority", "issuetype")},
            }
        raw = json.dumps(body).encode()
        for hook in list(self.webhooks):
            threading.Thread(target=deliver, args=(hook, raw), daemon=True).start()


def deliver(hook, raw):
    signature = hmac.new(hook["secret"].encode(), raw, hashlib.sha256).hexdigest()
    req = urllib.request.Request(hook["url"], data=raw, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "X-Hub-Signature": f"sha256={signature}",
        "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
        "User-Agent": "Atlassian Webhook HTTP Client",
    })
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
    except Exception as e:  # a receiver that is down is Jira's retry's business, not ours
        log(f"webhook to {hook['url']} failed: {e}")


# --- JQL parsing ----------------------------------------------------------------------------

TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=|~|>|<|\(|\)|,)|(?P<word>[^\s"=~<>!(),]+))')


def tokens(jql):
    out, at = [], 0
    while at < len(jql):
        if jql[at:].strip() == "":
            break
        m = TOKEN.match(jql, at)
        if not m or m.end() == at:
            raise Refusal(400, [f"Error in the JQL Query: unexpected character at position {at}."])
        at = m.end()
        if m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(("str", re.sub(r"\\(.)", r"\1", raw), raw))
        elif m.group("op") is not None:
            out.append(("op", m.group("op"), m.group("op")))
        else:
            out.append(("word", m.group("word"), m.group("word")))
    return out


def words(text):
    return [w for w in re.split(r"[^0-9a-z]+", text.lower()) if w]


def text_matcher(value, raw):
    """Jira's `~`: a quoted phrase matches its words in a row, otherwise every word."""
    phrase = value.startswith('"') and value.endswith('"') and len(value) >= 2
    # Outside a phrase, Lucene's reserved characters are an error unless escaped (\\ in the
    # JQL string).
    unescaped = re.sub(r"\\\\.", "", raw).replace('\\"', '"')
    for ch in "" if phrase else unescaped:
        if ch in LUCENE_RESERVED:
            raise Refusal(400, [f"The text query '{value}' for field 'summary' is not valid: probably your query syntax is invalid."])
    wanted = words(value)
    if not wanted:
        raise Refusal(400, [f"The text query '{value}' for field 'summary' is not valid."])

    def match(summary):
        have = words(summary)
        if phrase:
            return any(have[i:i + len(wanted)] == wanted for i in range(len(have) - len(wanted) + 1))
        return all(w in have for w in wanted)

    return match


def parse_jql(jql, jira):
    toks = tokens(jql)
    clauses, order, i = [], None, 0

    def expect_value():
        nonlocal i
        if i >= len(toks) or toks[i][0] not in ("str", "word"):
            raise Refusal(400, ["Error in the JQL Query: Expecting a value."])
        tok = toks[i]
        i += 1
        return tok

    while i < len(toks):
        kind, value, _ = toks[i]
        if kind == "word" and value.lower() == "order":
            if i + 1 >= len(toks) or toks[i + 1][1].lower() != "by" or i + 2 >= len(toks):
                raise Refusal(400, ["Error in the JQL Query: Expecting 'by'."])
            field = toks[i + 2][1].lower()
            if field not in ("updated", "created"):
                raise Refusal(400, [f"This stand-in orders by updated or created, not {field!r}."])
            desc = False
            i += 3
            if i < len(toks):
                d = toks[i][1].upper()
                if d not in ("ASC", "DESC"):
                    raise Refusal(400, [f"Error in the JQL Query: Expecting ASC or DESC, got {toks[i][1]!r}."])
                desc = d == "DESC"
                i += 1
            if i != len(toks):
                raise Refusal(400, ["Error in the JQL Query: nothing may follow ORDER BY."])
            order = (field, desc)
            break
        if clauses:
            if kind != "word" or value.upper() != "AND":
                raise Refusal(400, [f"This stand-in joins clauses with AND only, not {value!r}."])
            i += 1
            kind, value, _ = toks[i] if i < len(toks) else ("", "", "")
        if kind != "word":
            raise Refusal(400, ["Error in the JQL Query: Expecting a field name."])
        field = value.lower()
        i += 1
        if i >= len(toks) or not (toks[i][0] == "op" or toks[i][1].lower() == "in"):
            raise Refusal(400, ["Error in the JQL Query: Expecting an operator."])
        op = toks[i][1]
        i += 1
        if field == "project" and op.lower() == "in":
            if i >= len(toks) or toks[i][1] != "(":
                raise Refusal(400, ["Error in the JQL Query: Expecting '(' after IN."])
            i += 1
            keys = []
            while True:
                _, v, _ = expect_value()
                project = jira.project_of(v)
                if project is None:
                    raise Refusal(400, [f"The value '{v}' does not exist for the field 'project'."])
                keys.append(project["key"])
                if i < len(toks) and toks[i][1] == ",":
                    i += 1
                    continue
                if i < len(toks) and toks[i][1] == ")":
                    i += 1
                    break
                raise Refusal(400, ["Error in the JQL Query: Expecting ',' or ')'."])
            clauses.append(lambda issue, keys=keys: issue["project"] in keys)
            continue
        vkind, v, raw = expect_value()
        if field == "project" and op == "=":
            project = jira.project_of(v)
            if project is None:
                raise Refusal(400, [f"The value '{v}' does not exist for the field 'project'."])
            clauses.append(lambda issue, key=project["key"]: issue["project"] == key)
        elif field in ("key", "issuekey") and op == "=":
            clauses.append(lambda issue, v=v: issue["key"] == v or issue["id"] == v)
        elif field == "summary" and op == "~":
            m = text_matcher(v, raw)
            clauses.append(lambda issue, m=m: m(issue["summary"]))
        elif field == "updated" and op == ">=":
            rel = re.fullmatch(r"-(\d+)m", v)
            if not rel:
                raise Refusal(400, [f"This stand-in takes relative dates in minutes (\"-5m\"), not {v!r}."])
            since = now_ms() - int(rel.group(1)) * 60_000
            clauses.append(lambda issue, since=since: issue["updated"] >= since)
        else:
            raise Refusal(400, [f"This stand-in does not know the clause {field} {op} {v!r}."])
    if not clauses:
        raise Refusal(400, ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."])
    return (lambda issue: all(c(issue) for c in clauses)), order


# --- HTTP ---------------------------------------------------------------------------------

def log(line):
    print(line, file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    server_version = "jira-standin"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def send_json(self, status, body=None, headers=None):
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            raise Refusal(415, ["Content-Type must be application/json"])
        try:
            return json.loads(raw)
        except ValueError:
            raise Refusal(400, ["Unexpected character in the request body: it is not JSON."])

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def authenticate(self):
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            raise Refusal(401, ["Client must be authenticated to access this resource."], why="no basic authentication")
        try:
            email, token = base64.b64decode(header[6:].strip()).decode().split(":", 1)
        except (ValueError, UnicodeDecodeError):
            raise Refusal(401, ["Client must be authenticated to access this resource."], why="malformed basic authentication")
        user = JIRA.users.get(email)
        if user is None or not hmac.compare_digest(user["token"], token):
            raise Refusal(401, ["Client must be authenticated to access this resource."], why=f"wrong email or API token for {email!r}")
        return user

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        who = "-"
        try:
            if path.startswith("/_standin/"):
                body = self.read_body()
                with JIRA.lock:
                    self.control(method, path, body)
                return
            user = self.authenticate()
            who = user["email"]
            with JIRA.lock:
                fail = JIRA.fail
                if fail and fail["count"] > 0 and fail.get("user") in (None, who):
                    fail["count"] -= 1
                    status = fail["status"]
                    log(f"injected {status} {method} {path} ({who})")
                    headers = {"Retry-After": str(fail["retry_after"])} if status == 429 else {}
                    message = "Rate limit exceeded." if status == 429 else "Service unavailable."
                    self.read_body()
                    self.send_json(status, {"errorMessages": [message], "errors": {}}, headers)
                    return
            body = self.read_body()
            with JIRA.lock:
                status, answer = route(method, path, query, body, user)
            self.send_json(status, answer)
        except Refusal as r:
            log(f"refused {r.status} {method} {self.path} ({who}): {r.why}")
            self.send_json(r.status, {"errorMessages": r.messages, "errors": r.errors})

    def control(self, method, path, body):
        if path == "/_standin/health" and method == "GET":
            self.send_json(200, {"ok": True})
        elif path == "/_standin/fail" and method == "POST":
            body = body or {}
            if body.get("status") not in (429, 503) and body.get("count", 0) != 0:
                raise Refusal(400, ["status is 429 or 503"])
            JIRA.fail = {
                "status": body.get("status", 503),
                "count": int(body.get("count", 0)),
                "retry_after": int(body.get("retry_after", 1)),
                "user": body.get("user"),
            }
            self.send_json(204)
        elif path == "/_standin/webhook" and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("url"), str) or not isinstance(body.get("secret"), str):
                raise Refusal(400, ["{\"url\": ..., \"secret\": ...}"])
            JIRA.webhooks.append({"url": body["url"], "secret": body["secret"]})
            self.send_json(204)
        else:
            raise Refusal(404, [f"no control endpoint {method} {path}"])


def one(query, name, default=None):
    values = query.get(name)
    return values[-1] if values else default


def int_param(query, name, default):
    try:
        return int(one(query, name, default))
    except ValueError:
        raise Refusal(400, [f"{name} is not a number"])


def route(method, path, query, body, user):
    api = "/rest/api/3/"
    if not path.startswith(api):
        raise Refusal(404, [f"null for uri: {path}"])
    parts = [urllib.parse.unquote(p) for p in path[len(api):].split("/") if p]
    if parts == ["myself"] and method == "GET":
        return 200, dict(JIRA.user_json(user["accountId"]), emailAddress=user["email"])
    if parts == ["serverInfo"] and method == "GET":
        return 200, {
            "baseUrl": JIRA.base,
            "version": "1001.0.0-SNAPSHOT",
            "deploymentType": "Cloud",
            "buildNumber": 100271,
            "serverTime": jira_time(now_ms()),
            "serverTitle": "Jira (stand-in)",
        }
    if parts[:1] == ["search"] and len(parts) == 1:
        raise Refusal(410, ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."])
    if parts == ["search", "jql"] and method == "POST":
        if body is None:
            raise Refusal(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        return 200, JIRA.search(body)
    if parts == ["issue"] and method == "POST":
        return 201, JIRA.create_issue(user, body)
    if len(parts) >= 2 and parts[0] == "issue":
        issue = JIRA.issue(parts[1])
        rest = parts[2:]
        if not rest and method == "GET":
            fields = one(query, "fields")
            expand = (one(query, "expand") or "").split(",")
            return 200, JIRA.issue_json(issue, fields.split(",") if fields else None, expand)
        if not rest and method == "PUT":
            JIRA.edit_issue(user, issue, body)
            return 204, None
        if rest == ["transitions"] and method == "GET":
            return 200, {"expand": "transitions", "transitions": JIRA.transitions(issue)}
        if rest == ["transitions"] and method == "POST":
            JIRA.transition(user, issue, body)
            return 204, None
        if rest == ["comment"] and method == "GET":
            start = int_param(query, "startAt", 0)
            size = min(int_param(query, "maxResults", 100), 100)
            order = one(query, "orderBy", "created")
            if order not in ("created", "+created", "-created"):
                raise Refusal(400, [f"orderBy accepts created, +created and -created, not {order!r}"])
            expand = (one(query, "expand") or "").split(",")
            unknown = [e for e in expand if e and e not in ("renderedBody", "properties")]
            if unknown:
                raise Refusal(400, [f"Unknown expand {unknown}"])
            comments = sorted(issue["comments"], key=lambda c: (c["created"], int(c["id"])), reverse=order == "-created")
            page = comments[start:start + size]
            return 200, {
                "startAt": start,
                "maxResults": size,
                "total": len(comments),
                "comments": [JIRA.comment_json(issue, c, expand) for c in page],
            }
        if rest == ["comment"] and method == "POST":
            return 201, JIRA.add_comment(user, issue, body)
        if rest == ["changelog"] and method == "GET":
            start = int_param(query, "startAt", 0)
            size = min(int_param(query, "maxResults", 100), 100)
            histories = issue["changelog"]
            page = histories[start:start + size]
            return 200, {
                "self": f"{JIRA.base}/rest/api/3/issue/{issue['id']}/changelog",
                "maxResults": size,
                "startAt": start,
                "total": len(histories),
                "isLast": start + size >= len(histories),
                "values": [JIRA.history_json(h) for h in page],
            }
    raise Refusal(404, [f"null for uri: {path} ({method})"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--project", action="append", default=[], help="a project key (repeatable; SUP when none)")
    p.add_argument("--priorities", default=",".join(PRIORITIES),
                   help="the site's priority scheme, most urgent first (ids 1, 2, ...)")
    p.add_argument("--user", action="append", default=[], help="email:api-token (repeatable)")
    a = p.parse_args()
    users = {}
    for u in a.user:
        email, token = u.split(":", 1)
        local = email.split("@", 1)[0]
        users[email] = {"email": email, "token": token, "accountId": f"acct-{local}", "displayName": local.capitalize()}
    global JIRA
    PRIORITIES[:] = [n.strip() for n in a.priorities.split(",") if n.strip()]
    JIRA = Jira(f"http://127.0.0.1:{a.port}", a.project or ["SUP"], users)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    log(f"jira stand-in on {JIRA.base}, projects {[p['key'] for p in JIRA.projects]}, users {sorted(users)}")
    server.serve_forever()


JIRA = None

if __name__ == "__main__":
    main()
