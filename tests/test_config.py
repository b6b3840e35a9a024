"""
Tests for L{clinvk.config}: defaults, leniency, environment, precedence,
validation and loading.
"""

from __future__ import annotations

import json

import attrs

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from clinvk.config import (
    BACKEND_NAMES,
    BackendConfig,
    ClinvkConfig,
    ConfigError,
    OutputConfig,
    ParallelConfig,
    ServerConfig,
    SessionConfig,
    UnifiedFlags,
    config_from_mapping,
    config_schema,
    default_config_path,
    load_config,
    parse_config,
)


def build(raw: object = None, environ: dict[str, str] | None = None) -> ClinvkConfig:
    return config_from_mapping(raw, environ or {}, source="test.yaml")  # type: ignore[arg-type]


def problems(raw: object, environ: dict[str, str] | None = None) -> list[str]:
    try:
        build(raw, environ)
    except ConfigError as e:
        return list(e.problems)
    raise AssertionError("no ConfigError")


class DefaultsTests(SynchronousTestCase):
    """Every key has the default the configuration schema documents."""

    def test_documented_defaults(self) -> None:
        """An empty configuration yields the documented defaults."""
        config = build()
        self.assertEqual(config.default_backend, "claude")
        self.assertEqual(config.unified_flags.approval_mode, "default")
        self.assertEqual(config.unified_flags.sandbox_mode, "default")
        self.assertFalse(config.unified_flags.dry_run)
        self.assertEqual(config.unified_flags.command_timeout_secs, 0)
        self.assertEqual(config.backends.get("claude"), config.backends.get("gemini"))
        self.assertEqual(config.backends.get("codex").extra_flags, ())
        self.assertTrue(config.backends.get("codex").enabled)
        self.assertEqual(config.session.retention_days, 30)
        self.assertTrue(config.session.store_token_usage)
        self.assertEqual(config.output.format, "json")
        self.assertEqual(config.parallel.max_workers, 3)
        server = config.server
        self.assertEqual((server.host, server.port), ("127.0.0.1", 8080))
        self.assertEqual(
            (
                server.request_timeout_secs,
                server.read_timeout_secs,
                server.write_timeout_secs,
                server.idle_timeout_secs,
            ),
            (300, 30, 300, 120),
        )
        self.assertEqual((server.rate_limit_rps, server.rate_limit_burst), (10, 20))
        self.assertFalse(server.rate_limit_enabled)
        self.assertEqual(server.rate_limit_cleanup_secs, 180)
        self.assertEqual(server.max_request_body_bytes, 10 * 1024 * 1024)
        self.assertEqual(server.cors_allowed_origins, ())
        self.assertEqual(server.cors_max_age, 300)
        self.assertFalse(server.metrics_enabled)
        self.assertEqual(
            (server.max_concurrent_runs, server.max_queued_runs, server.queue_timeout_secs),
            (16, 256, 60),
        )
        self.assertEqual(
            (server.stream_keepalive_secs, server.kill_grace_secs, server.shutdown_timeout_secs),
            (15, 5, 30),
        )

    def test_schema_and_classes_agree(self) -> None:
        """
        The attrs classes name exactly the keys of the schema, so the schema
        can be the single source of defaults and documentation.
        """
        schema = config_schema()["properties"]
        sections: dict[str, type] = {
            "unified_flags": UnifiedFlags,
            "session": SessionConfig,
            "output": OutputConfig,
            "parallel": ParallelConfig,
            "server": ServerConfig,
        }
        top = {f.name for f in attrs.fields(ClinvkConfig)} - {"source", "unknown_keys"}
        self.assertEqual(top, set(schema))
        for name, cls in sections.items():
            fields = {f.name for f in attrs.fields(cls)}
            self.assertEqual(fields, set(schema[name]["properties"]), name)
        self.assertEqual(set(schema["backends"]["properties"]), set(BACKEND_NAMES))
        self.assertEqual(
            {f.name for f in attrs.fields(BackendConfig)},
            set(schema["backends"]["properties"]["claude"]["properties"]),
        )

    def test_every_key_documented(self) -> None:
        """Every leaf key has a type, a default and a description."""

        def leaves(node: dict[str, object], path: str) -> list[tuple[str, dict[str, object]]]:
            found = []
            for name, prop in node.get("properties", {}).items():  # type: ignore[attr-defined]
                if prop.get("type") == "object":
                    found.extend(leaves(prop, f"{path}{name}."))
                else:
                    found.append((path + name, prop))
            return found

        for path, prop in leaves(config_schema(), ""):
            self.assertIn("default", prop, path)
            self.assertTrue(prop.get("description"), path)
            self.assertIn("type", prop, path)

    def test_immutable(self) -> None:
        """Configuration objects cannot be changed after loading."""
        config = build()
        with self.assertRaises(attrs.exceptions.FrozenInstanceError):
            config.server.port = 1  # type: ignore[misc]
        with self.assertRaises(attrs.exceptions.FrozenInstanceError):
            config.default_backend = "codex"  # type: ignore[misc]
        self.assertIsInstance(config.server.trusted_proxies, tuple)


class LenienceTests(SynchronousTestCase):
    """Values are read the way the reference reads them (docs/design/configuration.md#config-file)."""

    def test_case_insensitive_keys(self) -> None:
        """Keys match whatever their case."""
        config = build({"Server": {"PORT": 9001}, "BACKENDS": {"Claude": {"Model": "opus"}}})
        self.assertEqual(config.server.port, 9001)
        self.assertEqual(config.backends.get("claude").model, "opus")

    def test_strings_for_numbers_and_booleans(self) -> None:
        """Numbers and booleans may be written as strings."""
        config = build({"server": {"port": "9000", "metrics_enabled": "true", "rate_limit_enabled": "0"}})
        self.assertEqual(config.server.port, 9000)
        self.assertTrue(config.server.metrics_enabled)
        self.assertFalse(config.server.rate_limit_enabled)

    def test_comma_separated_list(self) -> None:
        """A list key given as one string is split on commas."""
        config = build({"server": {"trusted_proxies": "10.0.0.0/8, 127.0.0.1,"}})
        self.assertEqual(config.server.trusted_proxies, ("10.0.0.0/8", "127.0.0.1"))

    def test_same_key_in_two_cases(self) -> None:
        """A key given twice in different cases is reported, not silently merged."""
        self.assertEqual(
            problems({"server": {"port": 1}, "SERVER": {"host": "localhost"}}),
            ["config validation: server: given more than once (keys are case-insensitive)"],
        )

    def test_unknown_keys_ignored(self) -> None:
        """Unknown keys and sections for unknown backends are ignored, apart from being named."""
        config = build({"nope": 1, "backends": {"llama": {"model": "x"}}, "server": {"colour": "red"}})
        self.assertEqual(attrs.evolve(config, unknown_keys=()), build())


class UnknownKeyTests(SynchronousTestCase):
    """
    A key no setting has is named, with the nearest known key: a warning
    by default, an error when strict.
    """

    def test_typo_names_the_nearest_key(self) -> None:
        """A misspelt key is named by its path, with the key it resembles."""
        config = build({"server": {"prot": 9000}, "sever": {"port": 1}})
        self.assertEqual(
            config.unknown_keys,
            (
                "server.prot: unknown key; did you mean server.port?",
                "sever: unknown key; did you mean server?",
            ),
        )
        self.assertEqual(config.server.port, 8080)

    def test_nothing_near(self) -> None:
        """A key like no known one is named without a suggestion."""
        self.assertEqual(
            build({"backends": {"llama": {"model": "x"}}}).unknown_keys,
            ("backends.llama: unknown key",),
        )

    def test_case_is_kept(self) -> None:
        """The unknown key is shown as written; known keys as the schema spells them."""
        self.assertEqual(
            build({"Server": {"Rate_Limit_RPSS": 3}}).unknown_keys,
            ("server.Rate_Limit_RPSS: unknown key; did you mean server.rate_limit_rps?",),
        )

    def test_known_keys_only(self) -> None:
        """A file of known keys has none to report."""
        self.assertEqual(
            build({"server": {"port": 9000}, "backends": {"claude": {"model": "x"}}}).unknown_keys, ()
        )

    def test_strict(self) -> None:
        """With strict, unknown keys are errors beside the others."""
        with self.assertRaises(ConfigError) as raised:
            config_from_mapping({"server": {"prot": 9000, "port": -5}}, {}, source="test.yaml", strict=True)
        self.assertEqual(
            raised.exception.problems,
            (
                "config validation: server.prot: unknown key; did you mean server.port?",
                "config validation: server.port: port must be between 0 and 65535, got -5",
            ),
        )

    def test_strict_through_load(self) -> None:
        """load_config passes strict on to the file's checks."""
        path = FilePath(self.mktemp())
        path.setContent(b"server:\n  prot: 9000\n")
        self.assertEqual(len(load_config(path.path, {}).unknown_keys), 1)
        self.assertRaises(ConfigError, load_config, path.path, {}, strict=True)

    def test_unset_means_default(self) -> None:
        """Keys whose 0, negative or empty value means the default get the default."""
        config = build(
            {
                "server": {
                    "host": "",
                    "port": 0,
                    "request_timeout_secs": 0,
                    "read_timeout_secs": 0,
                    "write_timeout_secs": 0,
                    "idle_timeout_secs": 0,
                    "rate_limit_cleanup_secs": 0,
                    "cors_max_age": -5,
                    "max_request_body_bytes": 0,
                }
            }
        )
        server = config.server
        self.assertEqual((server.host, server.port), ("127.0.0.1", 8080))
        self.assertEqual(server.request_timeout_secs, 300)
        self.assertEqual(server.idle_timeout_secs, 120)
        self.assertEqual(server.rate_limit_cleanup_secs, 180)
        self.assertEqual(server.cors_max_age, 300)
        # 0 disables the body limit rather than meaning the default.
        self.assertEqual(server.max_request_body_bytes, 0)

    def test_burst_defaults_to_twice_the_rate(self) -> None:
        """rate_limit_burst 0 means twice rate_limit_rps."""
        config = build({"server": {"rate_limit_rps": 7, "rate_limit_burst": 0}})
        self.assertEqual(config.server.rate_limit_burst, 14)


class EnvironmentTests(SynchronousTestCase):
    """The environment variables of docs/design/configuration.md#config-environment."""

    def test_model_overrides(self) -> None:
        """CLINVK_<BACKEND>_MODEL beats the file."""
        config = build(
            {"backends": {"claude": {"model": "opus"}}},
            {"CLINVK_CLAUDE_MODEL": "sonnet", "CLINVK_CODEX_MODEL": "o3", "CLINVK_GEMINI_MODEL": "pro"},
        )
        self.assertEqual(
            (
                config.backends.get("claude").model,
                config.backends.get("codex").model,
                config.backends.get("gemini").model,
            ),
            ("sonnet", "o3", "pro"),
        )

    def test_backend_and_gopass_path(self) -> None:
        """CLINVK_BACKEND and CLINVK_API_KEYS_GOPASS_PATH beat the file."""
        config = build(
            {"default_backend": "claude", "server": {"api_keys_gopass_path": "a/b"}},
            {"CLINVK_BACKEND": "gemini", "CLINVK_API_KEYS_GOPASS_PATH": "c/d"},
        )
        self.assertEqual(config.default_backend, "gemini")
        self.assertEqual(config.server.api_keys_gopass_path, "c/d")

    def test_empty_counts_as_unset(self) -> None:
        """An empty variable leaves the file's value."""
        config = build({"backends": {"codex": {"model": "o3"}}}, {"CLINVK_CODEX_MODEL": ""})
        self.assertEqual(config.backends.get("codex").model, "o3")

    def test_no_generic_mapping(self) -> None:
        """Variables such as CLINVK_SERVER_PORT have no effect."""
        config = build(None, {"CLINVK_SERVER_PORT": "9999", "CLINVK_DEFAULT_BACKEND": "codex"})
        self.assertEqual(config, build())

    def test_override_keeps_file_errors(self) -> None:
        """An override does not hide a section of the wrong type in the file."""
        self.assertEqual(
            problems({"backends": 5}, {"CLINVK_CLAUDE_MODEL": "m"}),
            ["config validation: backends: expected object, got integer 5"],
        )
        self.assertEqual(
            problems({"backends": {"claude": "x"}}, {"CLINVK_CLAUDE_MODEL": "m"}),
            ['config validation: backends.claude: expected object, got string "x"'],
        )

    def test_environment_is_validated(self) -> None:
        """A bad value from the environment is reported like one from the file."""
        self.assertEqual(
            problems(None, {"CLINVK_BACKEND": "llama"}),
            ['config validation: default_backend: invalid backend "llama" (valid: claude, codex, gemini)'],
        )


class PrecedenceTests(SynchronousTestCase):
    """--host and --port over the file over the defaults (docs/design/configuration.md#config-precedence)."""

    def test_flags_win(self) -> None:
        """A non-empty host and a non-zero port replace the file's."""
        config = build({"server": {"host": "0.0.0.0", "port": 9000}}).with_server_overrides(
            host="::1", port=9001
        )
        self.assertEqual((config.server.host, config.server.port), ("::1", 9001))

    def test_empty_flags_keep_the_file(self) -> None:
        """An empty host and port 0 leave the file's values."""
        config = build({"server": {"host": "0.0.0.0", "port": 9000}}).with_server_overrides(host="", port=0)
        self.assertEqual((config.server.host, config.server.port), ("0.0.0.0", 9000))

    def test_port_zero_in_file_means_default(self) -> None:
        """server.port 0 means 8080 unless --port is given."""
        self.assertEqual(build({"server": {"port": 0}}).server.port, 8080)
        self.assertEqual(build({"server": {"port": 0}}).with_server_overrides(port=9001).server.port, 9001)

    def test_invalid_flags(self) -> None:
        """A bad --host or --port is a configuration error naming the flag."""
        with self.assertRaises(ConfigError) as raised:
            build().with_server_overrides(host="bad host", port=70000)
        self.assertEqual(
            raised.exception.problems,
            ('--host: invalid host "bad host"', "--port: port must be between 0 and 65535, got 70000"),
        )

    def test_ipv6_address(self) -> None:
        """An IPv6 literal works with or without brackets and is logged bracketed."""
        for host in ("::1", "[::1]"):
            server = build({"server": {"host": host}}).server
            self.assertEqual(server.host, host)
            self.assertEqual(server.bind_host, "::1")
            self.assertEqual(server.address, "[::1]:8080")


class ValidationTests(SynchronousTestCase):
    """The checks of docs/design/configuration.md#config-validation, with their exact messages."""

    def test_approval_mode_message(self) -> None:
        """An invalid approval mode's message, word for word."""
        with self.assertRaises(ConfigError) as raised:
            build({"unified_flags": {"approval_mode": "sometimes"}})
        self.assertEqual(
            str(raised.exception),
            "configuration has 1 error(s): config validation: unified_flags.approval_mode: "
            'invalid mode "sometimes" (valid: default, auto, none, always) [config file: test.yaml]',
        )

    def test_all_rules_in_order(self) -> None:
        """Every rule fires, in the documented reporting order."""
        raw = {
            "default_backend": "llama",
            "unified_flags": {
                "approval_mode": "x",
                "sandbox_mode": "y",
                "max_turns": -1,
                "max_tokens": -1,
            },
            "backends": {
                "gemini": {"approval_mode": "g", "sandbox_mode": "h"},
                "claude": {"approval_mode": "c"},
            },
            "session": {"retention_days": -1},
            "output": {"format": "xml"},
            "server": {
                "host": "not a host",
                "port": 70000,
                "request_timeout_secs": -1,
                "rate_limit_enabled": True,
                "rate_limit_rps": 0,
                "max_request_body_bytes": -5,
            },
            "parallel": {"max_workers": 0},
        }
        self.assertEqual(
            problems(raw),
            [
                'config validation: default_backend: invalid backend "llama" (valid: claude, codex, gemini)',
                'config validation: unified_flags.approval_mode: invalid mode "x" (valid: default, auto, none, always)',
                'config validation: unified_flags.sandbox_mode: invalid mode "y" (valid: default, read-only, workspace, full)',
                "config validation: unified_flags.max_turns: must be non-negative",
                "config validation: unified_flags.max_tokens: must be non-negative",
                'config validation: backends.claude.approval_mode: invalid mode "c"',
                'config validation: backends.gemini.approval_mode: invalid mode "g"',
                'config validation: backends.gemini.sandbox_mode: invalid mode "h"',
                "config validation: session.retention_days: must be non-negative",
                'config validation: output.format: invalid format "xml" (valid: default, text, json, stream-json)',
                'config validation: server.host: invalid host "not a host"',
                "config validation: server.port: port must be between 0 and 65535, got 70000",
                "config validation: server.request_timeout_secs: must be non-negative",
                "config validation: server.rate_limit_rps: must be positive when rate limiting is enabled",
                "config validation: server.max_request_body_bytes: must be non-negative",
                "config validation: parallel.max_workers: must be at least 1",
            ],
        )

    def test_empty_backend(self) -> None:
        """An empty default_backend has its own message."""
        self.assertEqual(
            problems({"default_backend": ""}),
            ["config validation: default_backend: must not be empty"],
        )

    def test_hosts(self) -> None:
        """IP literals, localhost and DNS-like names are valid hosts."""
        for host in ("0.0.0.0", "::", "[::1]", "localhost", "my-host.example.com"):
            self.assertEqual(build({"server": {"host": host}}).server.host, host)
        for host in ("a_b", "a b", "x" * 254, "[a"):
            self.assertEqual(
                problems({"server": {"host": host}}),
                [f'config validation: server.host: invalid host "{host}"'],
            )

    def test_wrong_types(self) -> None:
        """Values of the wrong type are reported with their key path."""
        self.assertEqual(
            problems({"server": {"port": "abc", "trusted_proxies": [["x"]]}, "session": 5}),
            [
                "config validation: session: expected object, got integer 5",
                'config validation: server.port: expected integer, got string "abc"',
                'config validation: server.trusted_proxies[0]: expected string, got array ["x"]',
            ],
        )

    def test_new_keys_checked(self) -> None:
        """The keys clinvk adds are checked too."""
        self.assertEqual(
            problems({"server": {"max_concurrent_runs": 0, "kill_grace_secs": -1}}),
            [
                "config validation: server.max_concurrent_runs: must be at least 1",
                "config validation: server.kill_grace_secs: must be non-negative",
            ],
        )
        self.assertEqual(
            problems({"server": {"live_idle_secs": -1, "max_live_processes": -2}}),
            [
                "config validation: server.live_idle_secs: must be non-negative",
                "config validation: server.max_live_processes: must be non-negative",
            ],
        )
        self.assertEqual(
            problems({"backends": {"codex": {"warm": -1}}}),
            ["config validation: backends.codex.warm: must be non-negative"],
        )


class LoadingTests(SynchronousTestCase):
    """Reading files (docs/design/configuration.md#config-file)."""

    def write(self, name: str, content: str) -> str:
        directory = FilePath(self.mktemp())
        directory.makedirs()
        path = directory.child(name)
        path.setContent(content.encode("utf-8"))
        return path.path

    def test_default_path(self) -> None:
        """The default file is ~/.clinvk/config.yaml under HOME."""
        self.assertEqual(default_config_path({"HOME": "/home/u"}), "/home/u/.clinvk/config.yaml")

    def test_missing_default_file(self) -> None:
        """A missing default file means built-in defaults."""
        home = self.mktemp()
        config = load_config(None, {"HOME": home})
        self.assertIsNone(config.source)
        self.assertEqual(attrs.evolve(config, source="test.yaml"), build())

    def test_default_file_read(self) -> None:
        """The default file is read when it exists."""
        home = FilePath(self.mktemp())
        home.child(".clinvk").makedirs()
        home.child(".clinvk").child("config.yaml").setContent(b"server:\n  port: 9100\n")
        config = load_config(None, {"HOME": home.path})
        self.assertEqual(config.server.port, 9100)
        self.assertEqual(config.source, home.child(".clinvk").child("config.yaml").path)

    def test_missing_explicit_file(self) -> None:
        """--config naming a missing file is an error naming the file."""
        path = self.mktemp()
        with self.assertRaises(ConfigError) as raised:
            load_config(path, {})
        self.assertEqual(str(raised.exception), f"failed to load config: {path}: no such file")

    def test_unparsable_yaml(self) -> None:
        """A YAML syntax error is one line naming the file, line and column."""
        path = self.write("config.yaml", "server:\n  port: [1\n")
        with self.assertRaises(ConfigError) as raised:
            load_config(path, {})
        message = str(raised.exception)
        self.assertTrue(message.startswith(f"failed to load config: {path}: line 3, column 1: "), message)
        self.assertNotIn("\n", message)

    def test_not_a_mapping(self) -> None:
        """A file that is not a mapping of keys is refused."""
        path = self.write("config.yaml", "- a\n- b\n")
        with self.assertRaises(ConfigError) as raised:
            load_config(path, {})
        self.assertIn("expected a mapping of keys at the top level, got array", str(raised.exception))

    def test_empty_file(self) -> None:
        """An empty file means the defaults."""
        self.assertEqual(load_config(self.write("config.yaml", ""), {}).server, build().server)

    def test_formats_by_extension(self) -> None:
        """.json and .toml files are parsed as such; other names as YAML."""
        as_json = self.write("c.json", json.dumps({"server": {"port": 9201}}))
        as_toml = self.write("c.toml", "[server]\nport = 9202\n")
        as_yml = self.write("c.yml", "server: {port: 9203}\n")
        self.assertEqual(load_config(as_json, {}).server.port, 9201)
        self.assertEqual(load_config(as_toml, {}).server.port, 9202)
        self.assertEqual(load_config(as_yml, {}).server.port, 9203)

    def test_bad_json(self) -> None:
        """A JSON syntax error is reported on one line."""
        path = self.write("c.json", "{")
        with self.assertRaises(ConfigError) as raised:
            load_config(path, {})
        self.assertIn("Expecting property name", str(raised.exception))

    def test_not_utf8(self) -> None:
        """A file that is not UTF-8 is refused."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        directory.child("c.yaml").setContent(b"server: \xff\n")
        with self.assertRaises(ConfigError) as raised:
            load_config(directory.child("c.yaml").path, {})
        self.assertIn("not UTF-8 text", str(raised.exception))

    def test_unreadable(self) -> None:
        """A directory given as the file is an error, not a traceback."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        with self.assertRaises(ConfigError) as raised:
            load_config(directory.path, {})
        self.assertTrue(raised.exception.loading)

    def test_parse_config_validates(self) -> None:
        """File content goes through the same validation."""
        with self.assertRaises(ConfigError):
            parse_config(b"server:\n  port: -1\n", "x.yaml", {})
