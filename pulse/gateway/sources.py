"""The `sources:` section of the pipeline configuration (SPEC 8.2): types and validation.

    sources:
      acme-hubspot:                       # POST /ingest/hubspot/acme-hubspot
        kind: hubspot                     # pulse | hubspot | pipedrive | close
        secret_env: HUBSPOT_CLIENT_SECRET # or secret_file: /run/secrets/hubspot (never inline)
        pipeline: default
        stages: {appointmentscheduled: new, closedwon: {closed: won}}
        owners: {"12415231": maria}
        teams: {maria: emea}
        lead_id_prefix: ""
        max_age: 300s

`pulse.config.load_config` keeps the section in `Config.extra`; `gateway_sources`
validates it against the pipelines of the same file and raises
`ConfigError(file, key, problem)` (exit 2). Secrets are read from the environment
mapping or the file given, and never appear in an error message or a repr.
"""
from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from pulse.config import Config, ConfigChecker, ConfigError, kind_of, show_value

KINDS = ("pulse", "hubspot", "pipedrive", "close")
OUTCOMES = ("won", "lost")
DEFAULT_MAX_AGE_S = 300
_COMMON_KEYS = ("kind", "secret_env", "secret_file")
_KEYS_OF_KIND = {
    "pulse": _COMMON_KEYS + ("max_age",),
    "hubspot": _COMMON_KEYS + ("pipeline", "stages", "owners", "teams", "lead_id_prefix", "max_age",
                               "legacy_signatures"),
    "pipedrive": _COMMON_KEYS + ("pipeline", "stages", "owners", "teams", "lead_id_prefix"),
    "close": _COMMON_KEYS + ("pipeline", "stages", "owners", "teams", "lead_id_prefix", "max_age"),
}
_STAGE_ENTRY_KEYS = ("stage", "closed", "pipeline")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a CRM stage id leads: an open stage of a pipeline, or a close (`closed` set)."""
    pipeline: str
    stage: str | None = None
    closed: str | None = None        # "won" | "lost"


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    secret: bytes = field(repr=False)
    pipeline: str = "default"
    stages: Mapping[str, Target] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    lead_id_prefix: str = ""
    max_age_s: int = DEFAULT_MAX_AGE_S
    legacy_signatures: bool = False

    def target(self, stage_id: str) -> Target:
        """The mapping of a CRM stage id; unmapped: the id itself as a stage of `pipeline`
        (the worker dead-letters it as unknown_stage: visible, never silent)."""
        found = self.stages.get(stage_id)
        return found if found is not None else Target(self.pipeline, stage=stage_id)

    @cached_property
    def pipelines(self) -> tuple[str, ...]:
        """Every pipeline the stage mapping leads to (HubSpot's lead.updated goes to each)."""
        names = {t.pipeline for t in self.stages.values()} or {self.pipeline}
        return tuple(sorted(names))

    def owner_fields(self, user_id: Any) -> dict[str, str]:
        """`owner` (through `owners`, else the id as a string) and `team` (through `teams`)."""
        if user_id is None or user_id == "":
            return {}
        owner = self.owners.get(crm_id(user_id), crm_id(user_id))
        team = self.teams.get(owner)
        return {"owner": owner, "team": team} if team is not None else {"owner": owner}


def crm_id(value: Any) -> str:
    """Every CRM id the gateway publishes is a string, whatever JSON type the CRM used."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _SourcesChecker(ConfigChecker):
    def __init__(self, config: Config, environ: Mapping[str, str]):
        super().__init__(config.source)
        self.config = config
        self.environ = environ

    def section(self, value: Any) -> dict[str, Source]:
        if not isinstance(value, dict) or not value:
            raise self.fail(("sources",), f"must map source names to source entries, got {kind_of(value)}")
        return {self.name(("sources",), name, "source name"): self.entry(name, body)
                for name, body in value.items()}

    def name(self, path: tuple, value: Any, what: str) -> str:
        if not isinstance(value, str) or not value or "/" in value:
            raise self.fail(path + (show_value(value),), f"{what} must be a non-empty string without '/'")
        return value

    def entry(self, name: str, body: Any) -> Source:
        path = ("sources", name)
        if not isinstance(body, dict):
            raise self.fail(path, f"must be a mapping with at least kind and a secret, got {kind_of(body)}")
        kind = body.get("kind")
        if kind not in KINDS:
            raise self.fail(path + ("kind",), f"{show_value(kind)} is not a source kind (one of: {', '.join(KINDS)})")
        allowed = _KEYS_OF_KIND[kind]
        for key in body:
            if key not in allowed:
                if key == "secret":
                    raise self.fail(path + ("secret",), "secrets are never written in the configuration: "
                                                        "use secret_env (a variable name) or secret_file (a path)")
                raise self.unknown_key(path, key, allowed, f"a {kind} source")
        secret = self.secret(path, kind, body)
        pipeline = body.get("pipeline", "default")
        if kind != "pulse":
            if not isinstance(pipeline, str) or pipeline not in self.config.pipelines:
                raise self.fail(path + ("pipeline",), f"{show_value(pipeline)} is not a configured pipeline "
                                                      f"(configured: {', '.join(self.config.pipelines)})")
        stages = self.stages(path, pipeline, body.get("stages")) if kind != "pulse" else {}
        owners = self.string_map(path + ("owners",), body.get("owners"))
        teams = self.string_map(path + ("teams",), body.get("teams"))
        prefix = body.get("lead_id_prefix", "")
        if not isinstance(prefix, str):
            raise self.fail(path + ("lead_id_prefix",), f"must be a string, got {kind_of(prefix)}")
        max_age = DEFAULT_MAX_AGE_S
        if body.get("max_age") is not None:
            max_age = self.duration(path + ("max_age",), body["max_age"])
        legacy = body.get("legacy_signatures", False)
        if not isinstance(legacy, bool):
            raise self.fail(path + ("legacy_signatures",), f"must be true or false, got {show_value(legacy)}")
        return Source(name, kind, secret, pipeline, stages, owners, teams, prefix, max_age, legacy)

    def secret(self, path: tuple, kind: str, body: dict) -> bytes:
        env_name, file_name = body.get("secret_env"), body.get("secret_file")
        if (env_name is None) == (file_name is None):
            raise self.fail(path, "needs exactly one of secret_env (an environment variable name) "
                                  "and secret_file (a path)")
        if env_name is not None:
            if not isinstance(env_name, str) or not env_name:
                raise self.fail(path + ("secret_env",), "must name an environment variable")
            value = self.environ.get(env_name, "").strip()
            if not value:
                raise self.fail(path + ("secret_env",), f"the environment variable {env_name} is not set or empty")
            where = ("secret_env",)
        else:
            if not isinstance(file_name, str) or not file_name:
                raise self.fail(path + ("secret_file",), "must be a path")
            try:
                with open(file_name, encoding="utf-8") as f:
                    value = f.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise self.fail(path + ("secret_file",), f"cannot read {file_name}: {reason}") from None
            if not value:
                raise self.fail(path + ("secret_file",), f"{file_name} is empty")
            where = ("secret_file",)
        if kind == "close":
            try:
                return binascii.unhexlify(value)
            except (binascii.Error, ValueError):
                raise self.fail(path + where, "a Close signature_key is hexadecimal (the secret's value is "
                                              "not shown)") from None
        if kind == "pipedrive" and ":" not in value:
            raise self.fail(path + where, "a Pipedrive secret is user:password (the Basic auth credentials "
                                          "given to Pipedrive as http_auth_user and http_auth_password)")
        return value.encode("utf-8")

    def stages(self, path: tuple, pipeline: str, value: Any) -> dict[str, Target]:
        path = path + ("stages",)
        if not isinstance(value, dict) or not value:
            raise self.fail(path, "must map CRM stage ids to our stages (docs/crm.md says how to list "
                                  f"them), got {kind_of(value)}")
        out: dict[str, Target] = {}
        for key, entry in value.items():
            here = path + (crm_id(key),)
            if isinstance(entry, str):
                entry = {"stage": entry}
            if not isinstance(entry, dict):
                raise self.fail(here, f"must be a stage name or a mapping like {{stage: X, pipeline: P}} "
                                      f"or {{closed: won}}, got {kind_of(entry)}")
            for k in entry:
                if k not in _STAGE_ENTRY_KEYS:
                    raise self.unknown_key(here, k, _STAGE_ENTRY_KEYS, "a stage mapping")
            target_pipeline = entry.get("pipeline", pipeline)
            config = self.config.pipelines.get(target_pipeline) if isinstance(target_pipeline, str) else None
            if config is None:
                raise self.fail(here + ("pipeline",), f"{show_value(target_pipeline)} is not a configured pipeline")
            if ("stage" in entry) == ("closed" in entry):
                raise self.fail(here, "needs exactly one of stage (an open stage) and closed (won or lost)")
            if "closed" in entry:
                if entry["closed"] not in OUTCOMES:
                    raise self.fail(here + ("closed",), f"{show_value(entry['closed'])} is not won or lost")
                out[crm_id(key)] = Target(target_pipeline, closed=entry["closed"])
            else:
                stage = entry["stage"]
                if not isinstance(stage, str) or stage not in config.stage_index:
                    raise self.fail(here, f"{show_value(stage)} is not a stage of pipeline {target_pipeline} "
                                          f"(stages: {', '.join(s.name for s in config.stages)})")
                out[crm_id(key)] = Target(target_pipeline, stage=stage)
        return out

    def string_map(self, path: tuple, value: Any) -> dict[str, str]:
        out = {}
        for key, name in self.optional_mapping(path, value).items():
            if not isinstance(name, str) or not name:
                raise self.fail(path + (crm_id(key),), f"must be a non-empty string, got {show_value(name)}")
            out[crm_id(key)] = name
        return out


def gateway_sources(config: Config, environ: Mapping[str, str]) -> dict[str, Source]:
    """Validate `config.extra["sources"]` (ConfigError when missing or invalid)."""
    check = _SourcesChecker(config, environ)
    if "sources" not in config.extra:
        raise check.fail(("sources",), "the gateway needs a sources section (docs/crm.md)")
    return check.section(config.extra["sources"])


__all__ = ["KINDS", "Source", "Target", "crm_id", "gateway_sources", "ConfigError"]
