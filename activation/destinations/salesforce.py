"""Salesforce: scores, segments, reason codes and audience membership written to Contact fields by Bulk API 2.0.

Followed (read 2026-11, "Bulk API 2.0 and Bulk API Developer Guide", Spring '26, API version 66.0): Create a Job
(POST /services/data/vXX.X/jobs/ingest/ with object, externalIdFieldName, contentType CSV, operation upsert,
lineEnding), Upload Job Data (PUT .../jobs/ingest/{jobId}/batches/, Content-Type text/csv, first row = field
API names), Upload Complete (PATCH .../jobs/ingest/{jobId}/ {"state": "UploadComplete"}), Get Job Info (poll
until JobComplete / Failed / Aborted; numberRecordsProcessed, numberRecordsFailed), Get Job Failed Record
Results (GET .../failedResults/: CSV with sf__Id, sf__Error and the uploaded columns), Step 5 "Bulk Upsert".
Auth: OAuth access token as `Authorization: Bearer`. One job per batch so a batch is confirmed only after its
job completed; failed rows stay pending and are re-sent. A removal upserts the membership field to false (the
contact and its scores stay). Salesforce is a CRM destination: every member is written, consent or not.
Fields (create them as custom fields on Contact; names are settings): the external id field holds customer_id.
The membership checkbox defaults to `Segmint_In_<audience>__c`, made a valid custom field name (see
`membership_field_name`): Salesforce ("Create Custom Fields", Field Name) allows only letters, digits and
underscores, at most 40 characters before the `__c` suffix, starting with a letter, with no trailing underscore
and no two consecutive underscores.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from activation import identifiers as ids
from activation import member_records as mr
from activation.destinations.base import BatchResult, text_or_none
from activation.destinations.registry import BuildRequest, register
from activation.http import DestinationError, HttpClient, RetryPolicy
from activation.ledger import SyncRecord

SALESFORCE_API_VERSION = "v66.0"
SALESFORCE_MAX_BATCH = 10_000
SCORE_FIELDS = {  # marts.customer_scores column -> Contact field
    "predicted_clv": "Segmint_Predicted_CLV__c",
    "purchase_propensity": "Segmint_Purchase_Propensity__c",
    "rfm_segment": "Segmint_RFM_Segment__c",
    "behavioral_segment": "Segmint_Behavioral_Segment__c",
    "top_drivers": "Segmint_Reason_Codes__c",
}
REASON_CODES_MAX_CHARS = 1_000
FINAL_JOB_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
MEMBERSHIP_FIELD_PREFIX = "Segmint_In_"
CUSTOM_FIELD_NAME_MAX = 40  # characters of the Field Name, before the `__c` suffix Salesforce appends
CUSTOM_FIELD_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)__c")
_HASH_CHARS = 8


def is_custom_field_name(api_name: str) -> bool:
    """True when `api_name` is a valid custom field API name (Field Name rules, then `__c`)."""
    return len(api_name) <= CUSTOM_FIELD_NAME_MAX + 3 and CUSTOM_FIELD_NAME.fullmatch(api_name) is not None


def _score_text(value: Any, column: str) -> str | None:
    """A score as the Contact field's text: floats at 4 decimals, reason codes cut to REASON_CODES_MAX_CHARS."""
    if isinstance(value, float) and value == value:
        value = round(value, 4)
    text = text_or_none(value)
    return text[:REASON_CODES_MAX_CHARS] if text and column == "top_drivers" else text


def membership_field_name(audience: str) -> str:
    """The default membership checkbox for an audience: `Segmint_In_<audience>__c`, valid for any audience name.

    A name that already fits is kept as is (fields created before this rule keep their name). Otherwise the
    audience name is reduced to letters, digits and single underscores, cut to fit, and followed by the first
    8 hex digits of its SHA-256, so two audiences never share a field and the same audience always gets the
    same one.
    """
    plain = f"{MEMBERSHIP_FIELD_PREFIX}{audience}__c"
    if is_custom_field_name(plain):
        return plain
    digest = hashlib.sha256(audience.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    room = CUSTOM_FIELD_NAME_MAX - len(MEMBERSHIP_FIELD_PREFIX) - 1 - _HASH_CHARS
    stem = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]", "_", audience))[:room].strip("_")
    return f"{MEMBERSHIP_FIELD_PREFIX}{stem}_{digest}__c" if stem else f"{MEMBERSHIP_FIELD_PREFIX}{digest}__c"


def field_name_problem(setting: str, api_name: str) -> str | None:
    """Why a configured field name would be refused by Salesforce, or None when it is valid."""
    if is_custom_field_name(api_name):
        return None
    return (
        f"{setting} '{api_name}' is not a valid custom field API name (letters, digits and single "
        f"underscores, starting with a letter, at most {CUSTOM_FIELD_NAME_MAX} characters, then __c)"
    )


class SalesforceContacts:
    """Contact fields for one audience: scores, segments, reason codes and a membership checkbox."""

    kind = "crm"
    MATCHABLE_SQL = mr.EVERYONE_MATCHABLE_SQL  # build_records gives a record (the size guard counts with it)
    FORMS_READ = mr.EMAIL_AND_NAMES_FORMS  # the contact forms build_records reads
    # The marts.customer_scores columns build_records reads: a sync joins those the audience table does not carry
    # (top_drivers, the reason codes) for its members (member_records.audience_forms).
    SCORES_READ = tuple(SCORE_FIELDS)

    def __init__(
        self,
        access_token: str,
        instance_url: str,
        audience: str,
        *,
        api_version: str = SALESFORCE_API_VERSION,
        object_name: str = "Contact",
        external_id_field: str = "Segmint_Customer_Id__c",
        membership_field: str | None = None,
        name: str = "salesforce",
        max_batch: int = SALESFORCE_MAX_BATCH,
        poll_interval_s: float = 2.0,
        max_polls: int = 300,
        policy: RetryPolicy | None = None,
        dry_run_dir: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.object_name = object_name
        self.external_id_field = external_id_field
        self.membership_field = membership_field or membership_field_name(audience)
        # Reported by begin(), inside the sync, so a bad setting fails the run with one line (no traceback).
        self.setting_problems = [
            p
            for p in (
                field_name_problem("external_id_field", external_id_field),
                field_name_problem("membership_field", self.membership_field),
            )
            if p
        ]
        self.prefix = f"/services/data/{api_version}/jobs/ingest"
        self.max_batch = min(max_batch, SALESFORCE_MAX_BATCH)
        self.poll_interval_s, self.max_polls = poll_interval_s, max_polls
        self._sleep = sleep or time.sleep
        extra = {"sleep": sleep} if sleep else {}
        self.http = HttpClient(
            name,
            instance_url,
            {"Authorization": f"Bearer {access_token}"},
            policy=policy,
            dry_run_dir=dry_run_dir,
            **extra,
        )
        self.columns = [
            external_id_field,
            "Email",
            "FirstName",
            "LastName",
            *SCORE_FIELDS.values(),
            self.membership_field,
        ]
        self.jobs: list[dict[str, Any]] = []

    def build_record(self, member: Mapping[str, Any]) -> SyncRecord | None:
        """The Contact row to upsert (every member has a customer id, so none is unusable)."""
        row: dict[str, Any] = {
            self.external_id_field: str(member["customer_id"]),
            "Email": ids.normalize_email(member.get("email")),
            "FirstName": text_or_none(member.get("first_name")),
            "LastName": text_or_none(member.get("last_name")),
        }
        for column, field_name in SCORE_FIELDS.items():
            row[field_name] = _score_text(member.get(column), column)
        return SyncRecord(str(member["customer_id"]), row)

    def build_records(self, forms: pd.DataFrame, fingerprints: bool = True) -> pd.DataFrame:
        """build_record for every member at once, from the audience's contact forms (member_records)."""
        keys = mr.member_keys(forms)
        scores = {
            field_name: [_score_text(value, column) for value in mr.column(forms, column)]
            for column, field_name in SCORE_FIELDS.items()
        }
        rows = []
        for position, (key, email, first, last) in enumerate(
            zip(keys, forms["n_email"], forms["t_first"], forms["t_last"], strict=True)
        ):
            row: dict[str, Any] = {self.external_id_field: key, "Email": email, "FirstName": first, "LastName": last}
            for field_name, texts in scores.items():
                row[field_name] = texts[position]
            rows.append(row)
        return mr.record_frame(keys, rows, fingerprints=fingerprints)

    def begin(self, planned_adds: int, planned_removes: int) -> None:
        """Nothing to open (each batch is its own ingest job); refuses field names Salesforce would refuse."""
        if self.setting_problems:
            raise DestinationError(self.name, "; ".join(self.setting_problems))

    def _csv(self, batch: Sequence[SyncRecord], member: bool) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for record in batch:
            values = {**record.identifiers, self.membership_field: "true" if member else "false"}
            writer.writerow(["" if values.get(c) is None else values[c] for c in self.columns])
        return buffer.getvalue()

    def _run_job(self, batch: Sequence[SyncRecord], member: bool) -> BatchResult:
        created = self.http.request(
            "POST",
            f"{self.prefix}/",
            json_body={
                "object": self.object_name,
                "externalIdFieldName": self.external_id_field,
                "contentType": "CSV",
                "operation": "upsert",
                "lineEnding": "LF",
            },
            dry_run_reply={"id": f"dry-run-{len(self.jobs)}", "state": "Open"},
        )
        job_id = str((created.json or {})["id"])
        self.http.request(
            "PUT",
            f"{self.prefix}/{job_id}/batches/",
            content=self._csv(batch, member),
            headers={"Content-Type": "text/csv"},
        )
        self.http.request(
            "PATCH",
            f"{self.prefix}/{job_id}/",
            json_body={"state": "UploadComplete"},
            dry_run_reply={"id": job_id, "state": "UploadComplete"},
        )
        info = self._wait_for_job(job_id)
        if info.get("state") != "JobComplete":
            raise DestinationError(
                self.name,
                f"ingest job {job_id} ended {info.get('state')}: {info.get('errorMessage', 'no message')}",
                retryable=True,
            )
        failed: dict[str, str] = {}
        if int(info.get("numberRecordsFailed") or 0) > 0:
            reply = self.http.request("GET", f"{self.prefix}/{job_id}/failedResults/", dry_run_reply="")
            for row in csv.DictReader(io.StringIO(reply.text)):
                failed[row.get(self.external_id_field, "")] = row.get("sf__Error", "failed")
        self.jobs.append(
            {
                "job": job_id,
                "size": len(batch),
                "processed": int(info.get("numberRecordsProcessed") or 0),
                "failed": len(failed),
            }
        )
        return BatchResult(
            confirmed=[r.member_key for r in batch if r.member_key not in failed],
            failed=failed,
            response={"job": job_id, "state": info.get("state")},
        )

    def _wait_for_job(self, job_id: str) -> dict[str, Any]:
        for _ in range(self.max_polls):
            reply = self.http.request(
                "GET",
                f"{self.prefix}/{job_id}/",
                dry_run_reply={"id": job_id, "state": "JobComplete", "numberRecordsFailed": 0},
            )
            info = reply.json or {}
            if info.get("state") in FINAL_JOB_STATES:
                return info
            self._sleep(self.poll_interval_s)
        raise DestinationError(self.name, f"ingest job {job_id} did not finish in time", retryable=True)

    def send_adds(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """Upsert the contacts with their scores and the membership field set to true."""
        return self._run_job(batch, member=True)

    def send_removes(self, batch: Sequence[SyncRecord]) -> BatchResult:
        """Upsert the contacts with the membership field set to false."""
        return self._run_job(batch, member=False)

    def readback(self) -> dict[str, Any]:
        """Records Salesforce processed and failed across this sync's jobs."""
        return {
            "jobs": self.jobs,
            "records_processed": sum(j["processed"] for j in self.jobs),
            "records_failed": sum(j["failed"] for j in self.jobs),
            "sent": sum(j["size"] for j in self.jobs),
        }


@register("salesforce", env=("SEGMINT_SALESFORCE_ACCESS_TOKEN", "SEGMINT_SALESFORCE_INSTANCE_URL"))
def build(request: BuildRequest) -> SalesforceContacts:
    """settings: optional object (default Contact), api_version, external_id_field, membership_field."""
    instance_url = request.env.get("SEGMINT_SALESFORCE_INSTANCE_URL") or "https://example.my.salesforce.com"
    return SalesforceContacts(
        request.secret("SEGMINT_SALESFORCE_ACCESS_TOKEN"),
        instance_url,
        request.audience.name,
        **request.pick("api_version", "external_id_field", "membership_field"),
        **({"object_name": request.settings["object"]} if "object" in request.settings else {}),
        **request.common,
    )
