"""Fake Salesforce Bulk API 2.0 ingest: create job, PUT CSV, PATCH UploadComplete, job info, failedResults."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from tests.servers.base import FakeApi, Reply, json_body, require, require_bearer

FIELD_NAME_MAX = 40


def check_custom_field(api_name: str) -> None:
    """Salesforce's custom field naming rule ("Create Custom Fields", Field Name), then the `__c` suffix."""
    require(api_name.endswith("__c"), f"{api_name}: custom fields end in __c")
    name = api_name[:-3]
    require(0 < len(name) <= FIELD_NAME_MAX, f"{api_name}: a field name has at most {FIELD_NAME_MAX} characters")
    require(re.fullmatch(r"[A-Za-z0-9_]+", name) is not None, f"{api_name}: only letters, digits and underscores")
    require(name[0].isalpha(), f"{api_name}: a field name must begin with a letter")
    require(not name.endswith("_"), f"{api_name}: a field name must not end with an underscore")
    require("__" not in name, f"{api_name}: a field name must not contain two consecutive underscores")


class FakeSalesforce(FakeApi):
    """Contacts keyed by the external id field; rows whose Email is listed in `reject_emails` fail."""

    def __init__(self, token: str = "sf-token", version: str = "v66.0", external_id: str = "Segmint_Customer_Id__c"):
        super().__init__()
        self.token, self.version, self.external_id = token, version, external_id
        self.contacts: dict[str, dict[str, str]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.reject_emails: set[str] = set()
        self.read_only_paths = ()

    def error_body(self, status: int, message: str) -> Any:
        return [{"errorCode": "INVALIDJOB" if status == 400 else "SERVER_ERROR", "message": message}]

    def route(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        require_bearer(headers, self.token)
        prefix = f"/services/data/{self.version}/jobs/ingest"
        if method == "POST" and path == f"{prefix}/":
            job = json_body(body)
            require(job.get("operation") == "upsert" and job.get("object") == "Contact", "upsert on Contact")
            require(job.get("externalIdFieldName") == self.external_id, "externalIdFieldName is required")
            check_custom_field(job["externalIdFieldName"])
            require(job.get("contentType") == "CSV" and job.get("lineEnding") == "LF", "CSV with LF line endings")
            job_id = f"750{len(self.jobs):015d}"
            self.jobs[job_id] = {"state": "Open", "rows": None, "failed": []}
            return Reply(200, {"id": job_id, "state": "Open", "contentUrl": f"{prefix[1:]}/{job_id}/batches"})
        match = re.fullmatch(rf"{re.escape(prefix)}/(\w+)/(batches/|failedResults/)?", path)
        require(match is not None and match.group(1) in self.jobs, f"unknown endpoint {method} {path}")
        job_id, tail = match.group(1), match.group(2)
        job = self.jobs[job_id]
        if method == "PUT" and tail == "batches/":
            require(job["state"] == "Open", "data can only be uploaded to an Open job")
            require(headers.get("content-type", "").startswith("text/csv"), "Content-Type must be text/csv")
            rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
            require(rows and self.external_id in rows[0], "CSV needs the external id column")
            for column in rows[0]:
                if column.endswith("__c"):
                    check_custom_field(column)
            job["rows"] = rows
            return Reply(201, None)
        if method == "PATCH" and tail is None:
            require(json_body(body) == {"state": "UploadComplete"}, "PATCH state must be UploadComplete")
            require(job["rows"] is not None, "no data uploaded")
            for row in job["rows"]:
                if row.get("Email") in self.reject_emails:
                    job["failed"].append({**row, "sf__Id": "", "sf__Error": "INVALID_EMAIL_ADDRESS:Email: invalid"})
                else:
                    self.contacts[row[self.external_id]] = row
            job["state"] = "JobComplete"
            return Reply(200, {"id": job_id, "state": "UploadComplete"})
        if method == "GET" and tail is None:
            return Reply(
                200,
                {
                    "id": job_id,
                    "state": job["state"],
                    "numberRecordsProcessed": len(job["rows"] or []),
                    "numberRecordsFailed": len(job["failed"]),
                },
            )
        if method == "GET" and tail == "failedResults/":
            out = io.StringIO()
            if job["failed"]:
                writer = csv.DictWriter(
                    out, fieldnames=["sf__Id", "sf__Error", *job["rows"][0].keys()], lineterminator="\n"
                )
                writer.writeheader()
                writer.writerows(job["failed"])
            return Reply(200, raw=out.getvalue().encode(), content_type="text/csv")
        raise AssertionError(f"unexpected {method} {path}")

    def members(self, field: str) -> set[str]:
        """Customer ids whose membership checkbox is true."""
        return {key for key, row in self.contacts.items() if row.get(field) == "true"}
