# -*- test-case-name: tests.test_config -*-
"""
Loading, validating and freezing the configuration.

The pipeline: file text -> mapping (YAML, JSON or TOML by extension) ->
lenient normalisation (case-insensitive keys, numbers and booleans given as
strings, comma-separated lists) -> environment overrides -> jsonschema type
validation against C{clinvk/schemas/config.json} -> defaults from that same
schema -> the checks of docs/design/configuration.md#config-validation -> frozen
attrs objects.  Nothing past this module sees a raw dict.

The schema is the single source of every key, type, default and
description; the attrs classes only name the fields, and a test checks that
both agree.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from types import MappingProxyType
from typing import Any

import attrs
import yaml
from attrs import frozen
from jsonschema import Draft202012Validator

# The backends, by name: also the names of their modules (clinvk.backends.<name>),
# of their configuration sections and of their CLIs' executables.  Adding a
# backend is adding its module and its name here; everything else derives
# from the module's IBackend (see clinvk.backends.build_backends).
BACKEND_NAMES = ("claude", "codex", "gemini")
APPROVAL_MODES = ("default", "auto", "none", "always")
SANDBOX_MODES = ("default", "read-only", "workspace", "full")
OUTPUT_FORMATS = ("default", "text", "json", "stream-json")

# Environment variables that override one key each
# (docs/design/configuration.md#config-environment).
# CLINVK_API_KEYS is not configuration: it is read by the authentication
# layer, so that keys never sit in a config object.
ENVIRONMENT_OVERRIDES: Mapping[str, tuple[str, ...]] = {
    "CLINVK_BACKEND": ("default_backend",),
    **{f"CLINVK_{name.upper()}_MODEL": ("backends", name, "model") for name in BACKEND_NAMES},
    "CLINVK_API_KEYS_GOPASS_PATH": ("server", "api_keys_gopass_path"),
}

# The key of the C{backends} object in the schema file that holds the one
# section every backend has; L{config_schema} makes a copy of it for each
# name of L{BACKEND_NAMES}.
PER_BACKEND = "x-per-backend"

_HOST_NAME = re.compile(r"[A-Za-z0-9.\-]{1,253}")


def config_schema() -> dict[str, Any]:
    """
    Load the configuration schema shipped in the package.

    The file describes the section of a backend once (under
    L{PER_BACKEND}); the schema returned has one copy of it for each name of
    L{BACKEND_NAMES}, as C{backends.<name>}.

    @return: The parsed JSON schema (a fresh copy on every call).
    """
    text = resources.files("clinvk.schemas").joinpath("config.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    backends = schema["properties"]["backends"]
    section = backends.pop(PER_BACKEND)
    backends["properties"] = {name: copy.deepcopy(section) for name in BACKEND_NAMES}
    return schema


class ConfigError(Exception):
    """
    The configuration cannot be used.

    @ivar source: The file the configuration came from, or L{None} when only
        defaults and the environment were used.
    @ivar problems: One message per problem, in reporting order.
    @ivar loading: True when the file could not be read or parsed at all,
        False when its content failed validation.
    """

    def __init__(self, source: str | None, problems: Sequence[str], *, loading: bool = False) -> None:
        self.source = source
        self.problems = tuple(problems)
        self.loading = loading
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.loading:
            return f"failed to load config: {self.source}: {self.problems[0]}"
        text = f"configuration has {len(self.problems)} error(s): " + "; ".join(self.problems)
        if self.source is not None:
            text += f" [config file: {self.source}]"
        return text


@frozen
class UnifiedFlags:
    """Backend-neutral execution defaults (C{unified_flags})."""

    approval_mode: str
    sandbox_mode: str
    verbose: bool
    dry_run: bool
    max_turns: int
    max_tokens: int
    command_timeout_secs: int


@frozen
class BackendConfig:
    """One C{backends.<name>} section."""

    model: str
    allowed_tools: str
    approval_mode: str
    sandbox_mode: str
    extra_flags: tuple[str, ...]
    enabled: bool
    system_prompt: str
    live: bool
    warm: int


def _read_only(sections: Mapping[str, BackendConfig]) -> Mapping[str, BackendConfig]:
    return MappingProxyType(dict(sections))


@frozen
class BackendsConfig:
    """
    The C{backends} section: one L{BackendConfig} per known backend.

    @ivar sections: The sections by backend name, in the order of
        L{BACKEND_NAMES}.
    """

    sections: Mapping[str, BackendConfig] = attrs.field(converter=_read_only)

    def get(self, name: str) -> BackendConfig:
        """
        @param name: A backend name from L{BACKEND_NAMES}.
        @return: That backend's section.
        @raise KeyError: For any other name.
        """
        return self.sections[name]

    def __hash__(self) -> int:
        # The sections are a read-only view of a dict, which has no hash.
        return hash(tuple(self.sections.items()))


@frozen
class SessionConfig:
    """The C{session} section."""

    auto_resume: bool
    retention_days: int
    default_tags: tuple[str, ...]
    store_token_usage: bool


@frozen
class OutputConfig:
    """The C{output} section."""

    format: str
    show_tokens: bool
    show_timing: bool
    color: bool


@frozen
class ParallelConfig:
    """The C{parallel} section."""

    max_workers: int
    fail_fast: bool
    aggregate_output: bool


@frozen
class ServerConfig:
    """
    The C{server} section, with the "not positive means the default" rules
    applied.

    Durations keep the C{*_secs} names and integer type of the file keys so
    that the configuration reference, the file and the code use one name
    for each setting.
    """

    host: str
    port: int
    request_timeout_secs: int
    read_timeout_secs: int
    write_timeout_secs: int
    idle_timeout_secs: int
    api_keys_gopass_path: str
    rate_limit_enabled: bool
    rate_limit_rps: int
    rate_limit_burst: int
    rate_limit_cleanup_secs: int
    trusted_proxies: tuple[str, ...]
    max_request_body_bytes: int
    cors_allowed_origins: tuple[str, ...]
    cors_allow_credentials: bool
    cors_max_age: int
    allowed_workdir_prefixes: tuple[str, ...]
    blocked_workdir_prefixes: tuple[str, ...]
    metrics_enabled: bool
    max_concurrent_runs: int
    max_queued_runs: int
    queue_timeout_secs: int
    stream_keepalive_secs: int
    kill_grace_secs: int
    shutdown_timeout_secs: int
    max_run_output_bytes: int
    output_idle_timeout_secs: int
    live_idle_secs: int
    max_live_processes: int
    compat_sessions: bool
    fetch_image_urls: bool
    tool_call_timeout_secs: int
    keep_cli_tools: bool

    @property
    def bind_host(self) -> str:
        """The host without the brackets an IPv6 literal may be given with."""
        return strip_brackets(self.host)

    @property
    def address(self) -> str:
        """C{host:port} as logged, with an IPv6 literal in brackets."""
        host = self.bind_host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"


@frozen
class ClinvkConfig:
    """
    The whole configuration, immutable.

    @ivar source: The file it was read from, or L{None} when none was.
    @ivar unknown_keys: One message per key of the file that no setting
        has, with the key's dotted path and the nearest known key, in file
        order: the runners warn about them (unknown keys are ignored,
        docs/design/configuration.md#config-file, but a typo ignored in silence is
        worse).
    """

    default_backend: str
    unified_flags: UnifiedFlags
    backends: BackendsConfig
    session: SessionConfig
    output: OutputConfig
    parallel: ParallelConfig
    server: ServerConfig
    source: str | None = None
    unknown_keys: tuple[str, ...] = ()

    def with_server_overrides(self, host: str | None = None, port: int | None = None) -> ClinvkConfig:
        """
        Apply the C{--host}/C{--port} flags: a non-empty host and a non-zero
        port win over the file.

        @raise ConfigError: If the host or port given is invalid.
        """
        changes: dict[str, Any] = {}
        problems = []
        if host:
            if not is_valid_host(host):
                problems.append(f'--host: invalid host "{host}"')
            changes["host"] = host
        if port:
            if not 0 <= port <= 65535:
                problems.append(f"--port: port must be between 0 and 65535, got {port}")
            changes["port"] = port
        if problems:
            raise ConfigError(None, problems)
        return attrs.evolve(self, server=attrs.evolve(self.server, **changes))


_SECTIONS: Mapping[str, type] = {
    "unified_flags": UnifiedFlags,
    "session": SessionConfig,
    "output": OutputConfig,
    "parallel": ParallelConfig,
    "server": ServerConfig,
}


def strip_brackets(host: str) -> str:
    """
    @return: C{host} without the surrounding brackets of an IPv6 literal.
    """
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def is_valid_host(host: str) -> bool:
    """
    The host rule of docs/design/configuration.md#config-validation: empty, an IP
    literal (IPv6 with or without brackets), C{localhost}, or letters,
    digits, C{-} and C{.}.
    """
    bare = strip_brackets(host)
    if not bare or bare == "localhost":
        return True
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return _HOST_NAME.fullmatch(bare) is not None
    return True


def default_config_path(environ: Mapping[str, str]) -> str:
    """
    @param environ: The process environment (C{HOME} is used).
    @return: C{<home>/.clinvk/config.yaml}.
    """
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".clinvk", "config.yaml")


def load_config(path: str | None, environ: Mapping[str, str], *, strict: bool = False) -> ClinvkConfig:
    """
    Read, validate and freeze the configuration.

    This does blocking file I/O: call it at start-up, before the reactor
    runs.

    @param path: The file named by C{--config}, which must exist; or
        L{None} for the default file, which may be missing.
    @param environ: The environment, for the overrides of
        docs/design/configuration.md#config-environment.
    @param strict: Whether an unknown key is an error rather than a
        warning (see L{ClinvkConfig.unknown_keys}).
    @raise ConfigError: If the file cannot be read or parsed, or if any
        value is invalid.
    """
    explicit = path is not None
    source = path if path is not None else default_config_path(environ)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(source, ["no such file"], loading=True) from None
        return config_from_mapping(None, environ, source=None)
    except OSError as e:
        raise ConfigError(source, [e.strerror or str(e)], loading=True) from None
    return parse_config(data, source, environ, strict=strict)


def parse_config(
    data: bytes, source: str, environ: Mapping[str, str], *, strict: bool = False
) -> ClinvkConfig:
    """
    Parse configuration file content, choosing the format by the file
    name's extension (C{.json}, C{.toml}, anything else is YAML).

    @raise ConfigError: If the content cannot be parsed or is invalid.
    """
    try:
        text = data.decode("utf-8")
        raw = _parser_for(source)(text)
    except UnicodeDecodeError as e:
        raise ConfigError(source, [f"not UTF-8 text: {e.reason} at byte {e.start}"], loading=True) from None
    except yaml.MarkedYAMLError as e:
        raise ConfigError(source, [_yaml_reason(e)], loading=True) from None
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(source, [" ".join(str(e).split())], loading=True) from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(
            source, [f"expected a mapping of keys at the top level, got {_json_type(raw)}"], loading=True
        )
    return config_from_mapping(raw, environ, source=source, strict=strict)


def _parser_for(source: str) -> Callable[[str], Any]:
    extension = os.path.splitext(source)[1].lower()
    if extension == ".json":
        return json.loads
    if extension == ".toml":
        return tomllib.loads
    return yaml.safe_load


def _yaml_reason(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or error.context or "invalid YAML"
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def config_from_mapping(
    raw: Mapping[Any, Any] | None,
    environ: Mapping[str, str],
    *,
    source: str | None,
    strict: bool = False,
) -> ClinvkConfig:
    """
    Build the configuration from an already parsed file.

    @param raw: The top-level mapping of the file, or L{None} for none.
    @param environ: The environment, for the overrides.
    @param source: The file name, for error messages.
    @param strict: Whether an unknown key is an error.
    @raise ConfigError: If any value is invalid, or with C{strict}, if a
        key is unknown.
    """
    schema = config_schema()
    problems: list[str] = []
    unknown: list[str] = []
    values = _normalise(raw or {}, schema, (), problems, unknown)
    if strict:
        problems.extend(f"config validation: {text}" for text in unknown)
        unknown = []
    for variable, key_path in ENVIRONMENT_OVERRIDES.items():
        value = environ.get(variable, "")
        if value:
            _set_path(values, key_path, value)

    type_errors = sorted(
        Draft202012Validator(schema).iter_errors(values),
        key=lambda e: _schema_order(schema, e.absolute_path),
    )
    problems.extend(_type_problem(error) for error in type_errors)
    bad_paths = {tuple(str(p) for p in error.absolute_path) for error in type_errors}
    full = _with_defaults(values, schema, bad_paths)
    problems.extend(_semantic_problems(full))
    if problems:
        raise ConfigError(source, problems)
    return attrs.evolve(_freeze(_apply_unset_defaults(full, schema), source), unknown_keys=tuple(unknown))


def _normalise(
    raw: Mapping[Any, Any],
    schema: Mapping[str, Any],
    path: tuple[str, ...],
    problems: list[str],
    unknown: list[str],
) -> dict[str, Any]:
    """
    Keep the keys the schema knows (matched case-insensitively) and convert
    scalars leniently towards the declared types.  Values that cannot be
    converted are kept as they are, for jsonschema to report; a key given
    twice in different cases is a problem; a key the schema does not know
    is described in C{unknown}.
    """
    properties: Mapping[str, Any] = schema.get("properties", {})
    result: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).lower()
        if name not in properties:
            unknown.append(_unknown_key(path, str(key), properties))
            continue
        if name in result:
            where = _dotted((*path, name))
            problems.append(f"config validation: {where}: given more than once (keys are case-insensitive)")
        result[name] = _coerce(value, properties[name], (*path, name), problems, unknown)
    return result


def _unknown_key(path: tuple[str, ...], key: str, known: Iterable[str]) -> str:
    """
    The message for C{key}, unknown at C{path}: its dotted path, and the
    known key at the same level that it most resembles, if any does.
    """
    text = f"{_dotted((*path, key))}: unknown key"
    nearest = difflib.get_close_matches(key.lower(), list(known), n=1, cutoff=0.6)
    if nearest:
        text += f"; did you mean {_dotted((*path, nearest[0]))}?"
    return text


def _coerce(
    value: Any, schema: Mapping[str, Any], path: tuple[str, ...], problems: list[str], unknown: list[str]
) -> Any:
    kind = schema.get("type")
    if kind == "object":
        return _normalise(value, schema, path, problems, unknown) if isinstance(value, Mapping) else value
    if kind == "array":
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [_coerce(item, schema.get("items", {}), path, problems, unknown) for item in value]
        return value
    if kind == "integer":
        return _to_int(value)
    if kind == "boolean":
        return _to_bool(value)
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _to_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return value
    return value


_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return value


def _set_path(values: dict[str, Any], path: Sequence[str], value: str) -> None:
    node = values
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            # The file gave something else than a section here; leave it for
            # validation to report rather than hide it under the override.
            return
        node = child
    node[path[-1]] = value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _type_problem(error: Any) -> str:
    expected = error.validator_value
    if isinstance(expected, list):
        expected = " or ".join(expected)
    return (
        f"config validation: {_dotted(error.absolute_path)}: expected {expected}, "
        f"got {_json_type(error.instance)} {json.dumps(error.instance, default=str)}"
    )


def _schema_order(schema: Mapping[str, Any], path: Sequence[Any]) -> list[int]:
    """Sort key: the declaration position of each key along C{path}."""
    order = []
    node: Mapping[str, Any] = schema
    for part in path:
        if isinstance(part, int):
            order.append(part)
            node = node.get("items", {})
            continue
        names = list(node.get("properties", {}))
        order.append(names.index(part) if part in names else len(names))
        node = node.get("properties", {}).get(part, {})
    return order


def _with_defaults(
    values: Mapping[str, Any],
    schema: Mapping[str, Any],
    bad_paths: set[tuple[str, ...]],
    prefix: tuple[str, ...] = (),
) -> dict[str, Any]:
    """
    Every key of the schema, taking the given value where it is well typed
    and the schema default otherwise.
    """
    result: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        path = (*prefix, name)
        given = values.get(name) if isinstance(values, Mapping) else None
        if prop.get("type") == "object":
            result[name] = _with_defaults(given if isinstance(given, Mapping) else {}, prop, bad_paths, path)
        elif name in values and not any(bad[: len(path)] == path for bad in bad_paths):
            result[name] = given
        else:
            result[name] = prop["default"]
    return result


def _semantic_problems(config: Mapping[str, Any]) -> list[str]:
    """
    The checks of docs/design/configuration.md#config-validation, in its reporting
    order, with its exact messages.
    """
    problems: list[str] = []

    def problem(field: str, message: str) -> None:
        problems.append(f"config validation: {field}: {message}")

    def non_negative(field: str, value: int) -> None:
        if value < 0:
            problem(field, "must be non-negative")

    backend = config["default_backend"]
    if not backend:
        problem("default_backend", "must not be empty")
    elif backend not in BACKEND_NAMES:
        problem("default_backend", f'invalid backend "{backend}" (valid: {", ".join(BACKEND_NAMES)})')

    flags = config["unified_flags"]
    if flags["approval_mode"] and flags["approval_mode"] not in APPROVAL_MODES:
        problem(
            "unified_flags.approval_mode",
            f'invalid mode "{flags["approval_mode"]}" (valid: {", ".join(APPROVAL_MODES)})',
        )
    if flags["sandbox_mode"] and flags["sandbox_mode"] not in SANDBOX_MODES:
        problem(
            "unified_flags.sandbox_mode",
            f'invalid mode "{flags["sandbox_mode"]}" (valid: {", ".join(SANDBOX_MODES)})',
        )
    non_negative("unified_flags.max_turns", flags["max_turns"])
    non_negative("unified_flags.max_tokens", flags["max_tokens"])
    non_negative("unified_flags.command_timeout_secs", flags["command_timeout_secs"])

    for name in sorted(config["backends"]):
        section = config["backends"][name]
        if section["approval_mode"] and section["approval_mode"] not in APPROVAL_MODES:
            problem(f"backends.{name}.approval_mode", f'invalid mode "{section["approval_mode"]}"')
        if section["sandbox_mode"] and section["sandbox_mode"] not in SANDBOX_MODES:
            problem(f"backends.{name}.sandbox_mode", f'invalid mode "{section["sandbox_mode"]}"')
        non_negative(f"backends.{name}.warm", section["warm"])

    non_negative("session.retention_days", config["session"]["retention_days"])

    output_format = config["output"]["format"]
    if output_format and output_format not in OUTPUT_FORMATS:
        problem(
            "output.format",
            f'invalid format "{output_format}" (valid: {", ".join(OUTPUT_FORMATS)})',
        )

    server = config["server"]
    if not is_valid_host(server["host"]):
        problem("server.host", f'invalid host "{server["host"]}"')
    if not 0 <= server["port"] <= 65535:
        problem("server.port", f"port must be between 0 and 65535, got {server['port']}")
    for key in (
        "request_timeout_secs",
        "read_timeout_secs",
        "write_timeout_secs",
        "idle_timeout_secs",
        "rate_limit_rps",
        "rate_limit_burst",
        "rate_limit_cleanup_secs",
    ):
        non_negative(f"server.{key}", server[key])
    if server["rate_limit_enabled"] and server["rate_limit_rps"] == 0:
        problem("server.rate_limit_rps", "must be positive when rate limiting is enabled")
    non_negative("server.max_request_body_bytes", server["max_request_body_bytes"])
    # The keys clinvk adds beyond the reference (docs/design/configuration.md#config-keys).
    if server["max_concurrent_runs"] < 1:
        problem("server.max_concurrent_runs", "must be at least 1")
    for key in (
        "max_queued_runs",
        "queue_timeout_secs",
        "stream_keepalive_secs",
        "kill_grace_secs",
        "shutdown_timeout_secs",
        "max_run_output_bytes",
        "output_idle_timeout_secs",
        "live_idle_secs",
        "max_live_processes",
        "tool_call_timeout_secs",
    ):
        non_negative(f"server.{key}", server[key])

    if config["parallel"]["max_workers"] < 1:
        problem("parallel.max_workers", "must be at least 1")
    return problems


def _not_positive(value: Any) -> bool:
    return value == "" or (isinstance(value, int) and value <= 0)


def _apply_unset_defaults(config: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """
    Replace a number that is not positive, or an empty string, by the
    default where the schema marks the key with C{x-default-unless-positive}
    (the reference's "C{<= 0} means the default" rules).
    """
    result: dict[str, Any] = {}
    for name, value in config.items():
        prop = schema["properties"][name]
        if prop.get("type") == "object":
            result[name] = _apply_unset_defaults(value, prop)
        elif prop.get("x-default-unless-positive") and _not_positive(value):
            result[name] = prop["default"]
        else:
            result[name] = value
    server = result.get("server")
    if server is not None and server["rate_limit_burst"] <= 0:
        # The one default that depends on another key (docs/design/http.md#rate-limit).
        server["rate_limit_burst"] = 2 * server["rate_limit_rps"]
    return result


def _freeze(config: Mapping[str, Any], source: str | None) -> ClinvkConfig:
    def section(cls: type, values: Mapping[str, Any]) -> Any:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    backends = BackendsConfig(
        {name: section(BackendConfig, config["backends"][name]) for name in BACKEND_NAMES}
    )
    return ClinvkConfig(
        default_backend=config["default_backend"],
        backends=backends,
        source=source,
        **{name: section(cls, config[name]) for name, cls in _SECTIONS.items()},
    )
