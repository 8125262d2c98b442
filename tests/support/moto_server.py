#!/usr/bin/env python3
"""Starts moto's server (same arguments as moto_server) with the corrections the tests need.

Correction (moto 5.2.5): the Docker-less Lambda backend can queue results
(POST /moto-api/static/lambda-simple/response) but cannot return a *function error*: every
queued result comes back as a success. Real Lambda marks a failed invocation with the
X-Amz-Function-Error header (Handled / Unhandled) and a payload {"errorType", "errorMessage"}.
Here a queued result that is a JSON object with a "functionError" key is returned that way:
the header is set to its value and the key is removed from the payload. Other results are
untouched.

Corrections to moto's Redshift Data API (moto 5.2.5), whose answers the Rust SDK cannot use:
- `CreatedAt` / `UpdatedAt` are ISO 8601 text where the API sends epoch seconds (the SDK fails
  to parse the answer): sent as epoch seconds.
- A statement's status stays STARTED forever: DescribeStatement answers FINISHED, as a statement
  that ran does; except, as a test-bed convention, a COPY into a table whose name starts with
  `failing_`, which answers FAILED with an error text like Redshift's.
- ListStatements is not implemented: it lists every statement executed (for the tests' checks).
- DescribeTable is not implemented: it answers the columns of the last
  `CREATE TABLE [IF NOT EXISTS] schema.table (…)` executed for that table (none: no columns),
  with an integer `nullable` (moto's own column metadata has a boolean there).
"""
import json
import sys

from moto.awslambda_simple import models

_original_invoke = models.LambdaSimpleBackend.invoke


def _invoke(self, function_name, qualifier, body, headers, response_headers):
    queue = self.lambda_simple_results_queue
    if queue:
        try:
            result = json.loads(queue[0])
        except ValueError:
            result = None
        if isinstance(result, dict) and "functionError" in result:
            queue.pop(0)
            response_headers["x-amz-function-error"] = result.pop("functionError")
            return json.dumps(result).encode()
    return _original_invoke(self, function_name, qualifier, body, headers, response_headers)


models.LambdaSimpleBackend.invoke = _invoke

import calendar
import datetime
import re

from moto.redshiftdata import responses as rsd_responses

_TABLES = {}  # (schema, table) -> [column names], from CREATE TABLE statements


def _epoch(text):
    if isinstance(text, (int, float)):
        return text
    t = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return calendar.timegm(t.utctimetuple())


def _unquote(name):
    return name.strip().strip('"').replace('""', '"').lower()


def _record_create(sql):
    m = re.match(r"\s*CREATE TABLE (?:IF NOT EXISTS )?((?:\"[^\"]+\"|\w+)\.)?(\"[^\"]+\"|\w+)\s*\((.*)\)\s*$", sql, re.S | re.I)
    if not m:
        return
    schema = _unquote(m.group(1)[:-1]) if m.group(1) else "public"
    columns = []
    for part in re.split(r",(?![^()]*\))", m.group(3)):
        part = part.strip()
        name = re.match(r'("(?:[^"]|"")+"|\w+)', part)
        if name:
            columns.append(_unquote(name.group(1)))
    _TABLES[(schema, _unquote(m.group(2)))] = columns


_original_execute = rsd_responses.RedshiftDataAPIServiceResponse.execute_statement
_original_describe = rsd_responses.RedshiftDataAPIServiceResponse.describe_statement


def _execute(self):
    _record_create(self._get_param("Sql") or "")
    status, headers, body = _original_execute(self)
    answer = json.loads(body)
    answer["CreatedAt"] = _epoch(answer["CreatedAt"])
    if self._get_param("WorkgroupName"):
        answer["WorkgroupName"] = self._get_param("WorkgroupName")
    return status, headers, json.dumps(answer)


def _describe(self):
    status, headers, body = _original_describe(self)
    if status != 200:
        return status, headers, body
    answer = json.loads(body)
    for key in ("CreatedAt", "UpdatedAt"):
        if key in answer:
            answer[key] = _epoch(answer[key])
    target = re.match(r"\s*COPY\s+(?:\"?\w+\"?\.)?\"?(\w+)", answer.get("QueryString", ""), re.I)
    if target and target.group(1).lower().startswith("failing_"):
        answer["Status"] = "FAILED"
        answer["Error"] = f"ERROR: Load into table '{target.group(1)}' failed. Check 'sys_load_error_detail' system table for details."
    else:
        answer["Status"] = "FINISHED"
    return status, headers, json.dumps(answer)


def _describe_table(self):
    schema = (self._get_param("Schema") or "public").lower()
    table = (self._get_param("Table") or "").lower()
    columns = [{"name": c, "nullable": 1, "typeName": "varchar"} for c in _TABLES.get((schema, table), [])]
    return 200, {}, json.dumps({"ColumnList": columns, "TableName": table})


def _list_statements(self):
    # Not implemented by moto either: every statement executed, oldest first, for the tests.
    statements = [
        {"Id": st.id, "QueryString": st.query_string, "Status": "STARTED", "CreatedAt": _epoch(st.created_at)}
        for st in self.redshiftdata_backend.statements.values()
    ]
    return 200, {}, json.dumps({"Statements": statements})


rsd_responses.RedshiftDataAPIServiceResponse.list_statements = _list_statements
rsd_responses.RedshiftDataAPIServiceResponse.execute_statement = _execute
rsd_responses.RedshiftDataAPIServiceResponse.describe_statement = _describe
rsd_responses.RedshiftDataAPIServiceResponse.describe_table = _describe_table

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
