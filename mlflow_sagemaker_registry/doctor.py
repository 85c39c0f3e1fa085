"""`mlsync doctor`: can this setup mirror? A checklist in a fixed order, each failure with its fix.

The checks, in order: the settings load; MLflow answers (and which MLflow serves it); AWS credentials
(STS); the region; the S3 prefix takes a write; each SageMaker call mlsync makes (the actions of
`iam_policy.sagemaker_statements`, the policy `mlsync iam-policy` prints); the serving image; the
webhook secret when `mlsync serve` runs here. A check whose prerequisite failed is not run but
`skipped`, with why (no S3 probe without credentials).

This module is pure: the order, the prerequisites, the fixes and the output are decided here, and what
is asked of MLflow and AWS is behind `Probes` (`sources/mlflow_probe.py`, `gateways/probes.py`,
composed by `wiring.doctor_probes`). Fixes name the setting, the IAM action or the command to run.

What the statuses mean for the exit code: `fail` makes `mlsync doctor` exit 1; `pass`, `skip` and
`warn` do not. `warn` is "could not be checked, or only partly": SageMaker has no dry run, so its write
calls cannot be tried without writing, and doctor never writes to the registry; they are listed as
warnings with the policy to compare against. A skip always follows a failure that already fails the run,
or means the check does not apply (no `mlsync serve` here).
"""

from __future__ import annotations

import enum
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .config import Settings
from .errors import ConfigError, GatewayError, MlsyncError
from .iam_policy import iam_policy, sagemaker_statements

PROBE_NAME = "mlsync-doctor-probe"
"""The S3 key (under the prefix) doctor writes and removes, and the model package group it reads.

Fixed rather than random, so that where a policy allows `s3:PutObject` but not `s3:DeleteObject` (mlsync
needs no delete) every run overwrites the same tiny object instead of leaving one more.
"""
PROBE_BODY = b'{"written_by": "mlsync doctor", "why": "checks that mlsync may write under this prefix"}'
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
"""How S3 and SageMaker answer a call IAM (or an SCP, or a bucket policy) refuses."""
_ECR_IMAGE = re.compile(r"\d{12}\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")

SETTINGS = "settings"
MLFLOW = "mlflow"
IDENTITY = "aws identity"
REGION = "region"
S3_PREFIX = "s3 prefix"
SAGEMAKER = "sagemaker permissions"
IMAGE = "image"
WEBHOOK_SECRET = "webhook secret"


class Status(str, enum.Enum):
    """A check's outcome; only FAIL fails `mlsync doctor` (see the module docstring)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One line of the checklist: what was checked, how it went, and what to do when it did not pass."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class MlflowAnswer:
    """What MLflow said: the registry mlsync reads, how many models it holds, which MLflow serves it.

    `servers` pairs each http(s) tracking or registry server (without credentials) with the version it
    reports on `GET /version`, None when it does not say (MLflow before 2.1 has no such route); empty
    when MLflow is a database or file store read directly.
    """

    registry: str
    models: int
    client_version: str
    servers: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Region:
    """The AWS region mlsync would use, where it came from, and whether botocore knows SageMaker there."""

    name: str | None
    origin: str
    known: bool


@dataclass(frozen=True)
class Identity:
    """Who the AWS credentials are (STS GetCallerIdentity), and the STS endpoint that said so."""

    account: str
    arn: str
    endpoint: str


@dataclass(frozen=True)
class ProbeObject:
    """The S3 probe: written at `uri`; `removal_problem` says why it could not be removed, if it was not."""

    uri: str
    removal_problem: str = ""


class Probes(Protocol):
    """What doctor asks MLflow and AWS; each method is one question, raising mlsync's errors."""

    def mlflow(self) -> MlflowAnswer:
        """Open the registry the settings name and read it; raises MlsyncError (SourceError) if not."""
        ...

    def region(self) -> Region:
        """The region, resolved as mlsync's AWS clients resolve it; asks nothing of AWS."""
        ...

    def identity(self) -> Identity:
        """STS GetCallerIdentity; raises GatewayError (no, expired or wrong credentials, no network)."""
        ...

    def write_probe(self, s3_uri: str) -> ProbeObject:
        """Put PROBE_BODY at `s3_uri`, then delete it; raises GatewayError when the put fails."""
        ...

    def sagemaker_read(self, operation: str) -> bool:
        """Make a harmless call that IAM authorizes as `operation` would be; False when there is none
        (a write: SageMaker has no dry run). Raises GatewayError when SageMaker refuses or fails it."""
        ...

    def default_image(self, mlflow_version: str) -> str:
        """The pyfunc image a package of a model saved by `mlflow_version` gets (no image configured)."""
        ...

    def image_problem(self, image: str) -> str | None:
        """Why SageMaker would refuse `image` as a container image, or None."""
        ...


def diagnose(
    load_settings: Callable[[], Settings], probes_for: Callable[[Settings], Probes], *, serve: bool = False
) -> list[Check]:
    """Run every check in order (see the module docstring) and return the checklist.

    Args:
        load_settings: loads the settings (flags > environment > file); a ConfigError is the first check
            failing, and every other check is skipped.
        probes_for: the probes over the settings (`wiring.doctor_probes`); building them asks nothing.
        serve: `mlsync serve` runs here (`--serve`), so its webhook secret is checked; without it, the
            secret is checked only when settings only `mlsync serve` reads are set.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        why = "the settings did not load"
        later = (MLFLOW, IDENTITY, REGION, S3_PREFIX, SAGEMAKER, IMAGE, WEBHOOK_SECRET)
        return [
            Check(
                SETTINGS,
                Status.FAIL,
                str(exc),
                "correct the setting the message names (every setting: "
                "docs/configuration.md), then rerun `mlsync doctor`",
            ),
            *(Check(name, Status.SKIP, why) for name in later),
        ]
    checks = _Run(settings, probes_for(settings), serve=serve)
    return [Check(SETTINGS, Status.PASS, _settings_summary(settings)), *checks]


class _Run:
    """The checks after the settings loaded, in order, keeping what later checks need of earlier ones."""

    def __init__(self, settings: Settings, probes: Probes, *, serve: bool) -> None:
        self.settings = settings
        self.probes = probes
        self.serve = serve
        self.mlflow: MlflowAnswer | None = None
        self.identity: Identity | None = None
        self.region = probes.region()

    def __iter__(self) -> Iterator[Check]:
        yield self._mlflow()
        yield self._identity()
        yield self._region()
        yield self._s3_prefix()
        yield from self._sagemaker()
        yield from self._images()
        yield self._webhook_secret()

    def _mlflow(self) -> Check:
        try:
            self.mlflow = answer = self.probes.mlflow()
        except MlsyncError as exc:
            return Check(
                MLFLOW,
                Status.FAIL,
                str(exc),
                "start the MLflow server or database, or point mlsync at the right one: --tracking-uri "
                "(MLFLOW_TRACKING_URI) and, if the registry lives elsewhere, --registry-uri "
                "(MLFLOW_REGISTRY_URI)",
            )
        servers = "; ".join(
            f"server {where} runs MLflow {version}"
            if version
            else f"server {where} does not say its version (no GET /version: MLflow before 2.1?)"
            for where, version in answer.servers
        )
        return Check(
            MLFLOW,
            Status.PASS,
            f"registry {answer.registry} answers ({answer.models} registered models); "
            + (servers or "no server: MLflow reads the store directly")
            + f"; client MLflow {answer.client_version}",
        )

    def _identity(self) -> Check:
        if self.region.name is None:
            return Check(IDENTITY, Status.SKIP, f"no AWS region to ask STS in (see {REGION!r})")
        try:
            self.identity = who = self.probes.identity()
        except MlsyncError as exc:
            return Check(IDENTITY, Status.FAIL, str(exc), _credentials_fix(exc))
        return Check(IDENTITY, Status.PASS, f"account {who.account}, {who.arn} (STS at {who.endpoint})")

    def _region(self) -> Check:
        region = self.region
        if region.name is None:
            return Check(
                REGION,
                Status.FAIL,
                "no AWS region is set",
                "set --region (MLSYNC_REGION, or region in mlsync.toml), AWS_DEFAULT_REGION, or a region in "
                "your AWS profile (boto3 does not read AWS_REGION)",
            )
        if not region.known:
            return Check(
                REGION,
                Status.WARN,
                f"{region.name} (from {region.origin}) is not among the regions this botocore knows "
                "SageMaker in",
                "check the name for a typo (e.g. us-east-1); if the region is newer than botocore, "
                "upgrade boto3",
            )
        return Check(REGION, Status.PASS, f"{region.name} (from {region.origin})")

    def _skip_without_aws(self) -> str | None:
        """Why an AWS check cannot run (no region, no working credentials), or None."""
        if self.region.name is None:
            return f"no AWS region (see {REGION!r})"
        if self.identity is None:
            return f"no working AWS credentials (see {IDENTITY!r})"
        return None

    def _s3_prefix(self) -> Check:
        why = self._skip_without_aws()
        if why is not None:
            return Check(S3_PREFIX, Status.SKIP, why)
        try:
            prefix = self.settings.require_s3_prefix()
        except ConfigError as exc:
            return Check(S3_PREFIX, Status.FAIL, "s3_prefix is not set", str(exc))
        try:
            probe = self.probes.write_probe(f"{prefix}/{PROBE_NAME}")
        except GatewayError as exc:
            return Check(S3_PREFIX, Status.FAIL, str(exc), self._s3_fix(exc, prefix))
        if probe.removal_problem:
            return Check(
                S3_PREFIX,
                Status.PASS,
                f"wrote {probe.uri}; it stays, as removing it failed ({probe.removal_problem}): mlsync needs "
                "no s3:DeleteObject, and the next `mlsync doctor` overwrites the same object",
            )
        return Check(S3_PREFIX, Status.PASS, f"wrote and removed {probe.uri}")

    def _s3_fix(self, exc: GatewayError, prefix: str) -> str:
        bucket = prefix.removeprefix("s3://").partition("/")[0]
        if exc.code == "NoSuchBucket":
            return (
                f"create the bucket (`aws s3 mb s3://{bucket} --region {self.region.name}`), or set "
                "s3_prefix (MLSYNC_S3_PREFIX, --s3-prefix) to a bucket that exists"
            )
        if exc.code in ACCESS_DENIED_CODES:
            (objects,) = [
                statement["Resource"]
                for statement in self._policy()["Statement"]
                if "s3:PutObject" in statement["Action"]
            ]
            return f"allow s3:PutObject on {objects} to {self._caller()}; {self._policy_hint()}"
        return "check the bucket's policy and region, and AWS_ENDPOINT_URL if set, then rerun"

    def _sagemaker(self) -> list[Check]:
        """One check per SageMaker action of the policy: those checked first, then the writes that
        cannot be (warnings), each in the policy's order."""
        why = self._skip_without_aws()
        account = self.identity.account if self.identity else "*"
        checks = []
        for statement in sagemaker_statements(self._resolved(), account):
            resources = statement["Resource"]
            resource_text = ", ".join(resources) if isinstance(resources, list) else resources
            for action in statement["Action"]:
                if why is not None:
                    checks.append(Check(action, Status.SKIP, why))
                else:
                    checks.append(self._permission(action, resource_text))
        return sorted(checks, key=lambda check: check.status is Status.WARN)

    def _permission(self, action: str, resources: str) -> Check:
        try:
            readable = self.probes.sagemaker_read(action.removeprefix("sagemaker:"))
        except GatewayError as exc:
            if exc.code in ACCESS_DENIED_CODES:
                fix = f"allow {action} on {resources} to {self._caller()}; {self._policy_hint()}"
                return Check(action, Status.FAIL, str(exc), fix)
            return Check(
                action,
                Status.FAIL,
                str(exc),
                "the call failed for another reason than permissions: check the region, the network and "
                "AWS_ENDPOINT_URL if set, then rerun",
            )
        if readable:
            return Check(action, Status.PASS, "allowed (a harmless read was answered)")
        return Check(
            action,
            Status.WARN,
            "not checked: a write, and SageMaker has no dry run (doctor never writes to the registry)",
            f"make sure your policy allows {action} on {resources}; {self._policy_hint()} to compare",
        )

    def _images(self) -> Iterator[Check]:
        """The image set for every model (`image`) or else the default, and each of `[images]`."""
        if self.settings.image is not None:
            yield self._configured_image(IMAGE, "image", self.settings.image)
        else:
            yield self._default_image()
        for model, image in sorted(self.settings.images.items()):
            yield self._configured_image(f"{IMAGE} ({model})", f"[images] {model!r}", image)

    def _configured_image(self, name: str, setting: str, image: str) -> Check:
        problem = self.probes.image_problem(image)
        if problem is None:
            ecr = _ECR_IMAGE.match(image)
            if ecr is not None and self.region.name is not None and ecr["region"] != self.region.name:
                problem = (
                    f"the image is in ECR of {ecr['region']} and the packages in {self.region.name}: "
                    "SageMaker pulls an ECR image only in the model's own region"
                )
        if problem is not None:
            where = self.region.name or "your region"
            fix = f"set {setting} in mlsync.toml to an image URI SageMaker can pull in {where}"
            return Check(name, Status.FAIL, f"{image}: {problem}", fix)
        return Check(name, Status.PASS, f"{image} (whether it exists in its registry is not checked)")

    def _default_image(self) -> Check:
        why = self._skip_without_aws()
        if why is not None:
            return Check(IMAGE, Status.SKIP, why)
        version = self.mlflow.client_version if self.mlflow else "<MLflow version>"
        try:
            example = self.probes.default_image(version)
        except MlsyncError as exc:
            return Check(IMAGE, Status.FAIL, str(exc), _credentials_fix(exc))
        return Check(
            IMAGE,
            Status.PASS,
            "no image is configured: each package gets MLflow's pyfunc image of the MLflow version that "
            f"saved the model, e.g. {example} (whether it exists in ECR is not checked; "
            "`mlflow sagemaker build-and-push-container` pushes it)",
        )

    def _webhook_secret(self) -> Check:
        serves = self._serves()
        if not serves:
            return Check(
                WEBHOOK_SECRET,
                Status.SKIP,
                "`mlsync serve` is not configured here (run `mlsync doctor --serve` where it runs)",
            )
        try:
            self.settings.require_webhook_secret()
        except ConfigError as exc:
            return Check(WEBHOOK_SECRET, Status.FAIL, f"`mlsync serve` {serves}, with no secret", str(exc))
        return Check(WEBHOOK_SECRET, Status.PASS, "set (not shown)")

    def _serves(self) -> str:
        """Why doctor takes `mlsync serve` to run here (empty: it does not)."""
        if self.serve:
            return "runs here (--serve)"
        if self.settings.events_token or self.settings.webhook_previous_secrets:
            return "is configured (events_token or webhook_previous_secrets is set)"
        return ""

    # -- what the fixes name ------------------------------------------------------------------------

    def _resolved(self) -> Settings:
        """The settings with the region boto3 resolved, so the policy's ARNs name it."""
        return replace(self.settings, region=self.region.name or self.settings.region)

    def _policy(self) -> dict[str, Any]:
        return iam_policy(self._resolved(), self.identity.account if self.identity else "*")

    def _caller(self) -> str:
        return self.identity.arn if self.identity else "the AWS credentials in use"

    def _policy_hint(self) -> str:
        account = self.identity.account if self.identity else "ACCOUNT_ID"
        return f"`mlsync iam-policy --account {account}` prints the whole policy"


def _settings_summary(settings: Settings) -> str:
    """The settings that decide where mlsync writes (no URI: they may hold credentials)."""
    region = settings.region or "from boto3's chain"
    return (
        f"loaded: s3_prefix {settings.s3_prefix or 'not set'}, "
        f"group_prefix {settings.group_prefix or 'none'}, region {region}, "
        f"artifact_mode {settings.artifact_mode}, on_delete {settings.on_delete}"
    )


_CREDENTIAL_FIXES = {
    "ExpiredToken": "refresh the AWS credentials (e.g. `aws sso login`), then rerun",
    "ExpiredTokenException": "refresh the AWS credentials (e.g. `aws sso login`), then rerun",
    "InvalidClientTokenId": "the access key is unknown to AWS: fix AWS_ACCESS_KEY_ID / AWS_PROFILE",
    "SignatureDoesNotMatch": "the secret key does not match the access key: fix AWS_SECRET_ACCESS_KEY",
    "NoCredentialsError": "configure AWS credentials: AWS_PROFILE, AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or a role (instance profile, task role)",
    "EndpointConnectionError": "AWS cannot be reached: check the network, and AWS_ENDPOINT_URL if set",
}


def _credentials_fix(exc: MlsyncError) -> str:
    code = exc.code if isinstance(exc, GatewayError) else ""
    return _CREDENTIAL_FIXES.get(
        code, "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and AWS_ENDPOINT_URL if set"
    )


# -- output ---------------------------------------------------------------------------------------

_LABELS = {Status.PASS: "ok", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skipped"}


def failed(checks: Sequence[Check]) -> bool:
    """Whether `mlsync doctor` fails (exit 1): a check failed. Warnings and skips do not fail it."""
    return any(check.status is Status.FAIL for check in checks)


def checklist_lines(checks: Sequence[Check]) -> Iterator[str]:
    """The checklist as text: one line a check, its fix indented below it, then a summary line."""
    width = max(len(check.name) for check in checks)
    for check in checks:
        yield f"{_LABELS[check.status]:<8} {check.name:<{width}}  {check.detail}"
        if check.fix:
            yield f"{'':<8} {'':<{width}}  fix: {check.fix}"
    yield _summary(checks)


def checklist_json(checks: Sequence[Check]) -> str:
    """The checklist as one JSON document: `ok` (the exit code's verdict), the counts and each check."""
    document = {
        "ok": not failed(checks),
        "counts": {status.value: count for status, count in _counts(checks).items()},
        "checks": [
            {"name": c.name, "status": c.status.value, "detail": c.detail, "fix": c.fix} for c in checks
        ],
    }
    return json.dumps(document, indent=2)


def _counts(checks: Sequence[Check]) -> dict[Status, int]:
    counted = Counter(check.status for check in checks)
    return {status: counted[status] for status in Status}


def _summary(checks: Sequence[Check]) -> str:
    counts = _counts(checks)
    text = (
        f"{counts[Status.PASS]} ok, {counts[Status.FAIL]} failed, {counts[Status.WARN]} warnings, "
        f"{counts[Status.SKIP]} skipped"
    )
    if failed(checks):
        return f"{text}: fix the failures above, then rerun `mlsync doctor`."
    return f"{text}: ready" + (
        " (the warnings say what could not be checked)." if counts[Status.WARN] else "."
    )
