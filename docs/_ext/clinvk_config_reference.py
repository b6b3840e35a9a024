"""
The configuration reference of the docs, generated from the configuration
schema that the server itself validates against
(C{clinvk/schemas/config.json}), so that the page cannot drift from the code.

Two directives:

  - C{clinvk-config-reference}: one section per top-level key with a table
    of every setting (key, type, default, description);
  - C{clinvk-config-environment}: the environment variables that override
    a key, from C{clinvk.config.ENVIRONMENT_OVERRIDES}.

L{reference} and L{environment_overrides} turn the schema and the mapping
into plain data without Sphinx, so that a unit test can check that every
key of the schema is documented; only L{setup} and the directives need
Sphinx and docutils.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx

# The schema keywords the reference knows how to show.  Any other keyword
# fails the build instead of being silently left out of the page.
KNOWN_KEYWORDS = frozenset(
    {
        "$schema",
        "title",
        "description",
        "type",
        "properties",
        "items",
        "default",
        "enum",
        "minimum",
        "maximum",
        "x-default-unless-positive",
    }
)

# The placeholder of a per-name map's key, as in backends.<name>.model.
NAME = "<name>"


class UnsupportedSchema(Exception):
    """The schema uses something the reference cannot show."""


@dataclass(frozen=True)
class Setting:
    """
    One documented setting.

    @ivar key: The dotted key; for a per-name map it holds L{NAME}.
    @ivar type: The value's type in words (C{"list of strings"}).
    @ivar default: The default as it would be written in YAML, with a note
        when a zero or empty value also means the default.
    @ivar description: The description, with the allowed values appended.
    @ivar names: The names L{NAME} stands for; empty for a plain key.
    """

    key: str
    type: str
    default: str
    description: str
    names: tuple[str, ...] = ()

    def concrete_keys(self) -> list[str]:
        """The real dotted keys this setting documents."""
        if not self.names:
            return [self.key]
        return [self.key.replace(NAME, name) for name in self.names]


@dataclass(frozen=True)
class Section:
    """
    The settings under one top-level key (or the top-level settings).

    @ivar key: The top-level key, or C{""} for the top-level settings.
    @ivar title: The section's title.
    @ivar description: What the section configures.
    @ivar names: For a per-name map (C{backends}), the names it accepts.
    """

    key: str
    title: str
    description: str
    settings: list[Setting] = field(default_factory=list)
    names: tuple[str, ...] = ()


def reference(schema: Mapping[str, Any]) -> list[Section]:
    """
    The reference of C{schema}: first the top-level scalar settings, then
    one section per top-level object, in the schema's order.

    An object whose properties are all objects with the same schema (such
    as C{backends}) is a per-name map: its settings are shown once, as
    C{backends.<name>.model}.

    @raise UnsupportedSchema: If the schema uses a keyword outside
        L{KNOWN_KEYWORDS}.
    """
    _check_keywords(schema, "")
    top = Section(key="", title="Top-level keys", description="Keys at the top level of the file.")
    sections = [top]
    for key, sub in schema.get("properties", {}).items():
        if _is_object(sub):
            names = _map_names(sub)
            section = Section(key=key, title=key, description=sub.get("description", ""), names=names)
            if names:
                first = sub["properties"][names[0]]
                section.settings.extend(_settings(first, f"{key}.{NAME}", names))
            else:
                section.settings.extend(_settings(sub, key, ()))
            sections.append(section)
        else:
            top.settings.append(_setting(key, sub, ()))
    return [section for section in sections if section.settings]


def documented_keys(sections: Iterable[Section]) -> list[str]:
    """Every real dotted key that C{sections} document."""
    return [key for section in sections for setting in section.settings for key in setting.concrete_keys()]


def environment_overrides(overrides: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """The rows (variable, dotted key) of the environment table."""
    return [(variable, ".".join(path)) for variable, path in overrides.items()]


def _check_keywords(schema: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(schema) - KNOWN_KEYWORDS)
    if unknown:
        raise UnsupportedSchema(f"{where or 'the top level'}: cannot document {', '.join(unknown)}")
    for key, sub in schema.get("properties", {}).items():
        _check_keywords(sub, f"{where}.{key}" if where else key)
    if "items" in schema:
        _check_keywords(schema["items"], f"{where}[]")


def _is_object(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" and "properties" in schema


def _map_names(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of a per-name map, or C{()} if C{schema} is not one."""
    children = list(schema["properties"].values())
    if len(children) < 2 or not all(_is_object(child) for child in children):
        return ()
    if any(child != children[0] for child in children):
        return ()
    return tuple(schema["properties"])


def _settings(schema: Mapping[str, Any], prefix: str, names: tuple[str, ...]) -> list[Setting]:
    found = []
    for key, sub in schema["properties"].items():
        dotted = f"{prefix}.{key}"
        if _is_object(sub):
            found.extend(_settings(sub, dotted, names))
        else:
            found.append(_setting(dotted, sub, names))
    return found


def _setting(key: str, schema: Mapping[str, Any], names: tuple[str, ...]) -> Setting:
    return Setting(
        key=key,
        type=_type_words(schema),
        default=_default_text(schema),
        description=_description(schema),
        names=names,
    )


_TYPE_WORDS = {
    "string": ("string", "strings"),
    "integer": ("integer", "integers"),
    "number": ("number", "numbers"),
    "boolean": ("boolean", "booleans"),
    "object": ("mapping", "mappings"),
    "array": ("list", "lists"),
    "null": ("null", "nulls"),
}


def _type_words(schema: Mapping[str, Any], plural: bool = False) -> str:
    declared = schema.get("type", "any")
    types = declared if isinstance(declared, list) else [declared]
    words = []
    for name in types:
        singular, many = _TYPE_WORDS.get(name, (name, name))
        if name == "array" and "items" in schema:
            words.append(f"{'lists' if plural else 'list'} of {_type_words(schema['items'], plural=True)}")
        else:
            words.append(many if plural else singular)
    return " or ".join(words)


def _default_text(schema: Mapping[str, Any]) -> str:
    if "default" not in schema:
        return ""
    default = schema["default"]
    text = _yaml_value(default)
    if schema.get("x-default-unless-positive"):
        text += " (also when empty)" if isinstance(default, str) else " (also for 0 or less)"
    return text


def _yaml_value(value: Any) -> str:
    """C{value} as one would write it in the YAML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    return json.dumps(value)


def _description(schema: Mapping[str, Any]) -> str:
    parts = [schema.get("description", "").strip()]
    if "enum" in schema:
        parts.append("Allowed values: " + ", ".join(_yaml_value(value) for value in schema["enum"]) + ".")
    if "minimum" in schema:
        parts.append(f"At least {schema['minimum']}.")
    if "maximum" in schema:
        parts.append(f"At most {schema['maximum']}.")
    return " ".join(part for part in parts if part)


# -- Sphinx


def _table(
    headings: Sequence[str], rows: Iterable[Sequence[nodes.Node]], widths: Sequence[int]
) -> nodes.table:
    from docutils import nodes

    table = nodes.table()
    group = nodes.tgroup(cols=len(headings))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head += _row([nodes.Text(heading) for heading in headings])
    body = nodes.tbody()
    group += body
    for cells in rows:
        body += _row(cells)
    return table


def _row(cells: Iterable[nodes.Node]) -> nodes.row:
    from docutils import nodes

    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", cell)
        row += entry
    return row


def _settings_list(settings: Iterable[Setting]) -> nodes.definition_list:
    """One item per setting: the dotted key, then its type and default, then its description."""
    from docutils import nodes

    found = nodes.definition_list()
    for setting in settings:
        anchor = nodes.make_id(f"config-{setting.key.replace(NAME, 'name')}")
        term = nodes.term("", "", _literal(setting.key), ids=[anchor])
        facts = nodes.paragraph()
        facts += nodes.emphasis(setting.type, setting.type)
        if setting.default:
            facts += nodes.Text(", default ")
            facts += _literal(setting.default)
        definition = nodes.definition("", facts)
        if setting.description:
            definition += nodes.paragraph(setting.description, setting.description)
        found += nodes.definition_list_item("", term, definition)
    return found


def _literal(text: str) -> nodes.Node:
    from docutils import nodes

    return nodes.literal(text, text) if text else nodes.Text("")


def _schema_path() -> str:
    from importlib import resources

    return str(resources.files("clinvk.schemas").joinpath("config.json"))


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives with Sphinx."""
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    from clinvk.config import ENVIRONMENT_OVERRIDES, config_schema

    class ConfigReference(SphinxDirective):
        """C{clinvk-config-reference}: every setting of the configuration schema."""

        has_content = False

        def run(self) -> list[nodes.Node]:
            self.env.note_dependency(_schema_path())
            try:
                sections = reference(config_schema())
            except UnsupportedSchema as e:
                raise self.error(f"clinvk-config-reference: {e}") from None
            return [self._section(section) for section in sections]

        def _section(self, section: Section) -> nodes.section:
            anchor = nodes.make_id(f"config-{section.key or 'top-level'}")
            node = nodes.section(ids=[anchor], names=[anchor])
            title = nodes.title()
            title += _literal(section.key) if section.key else nodes.Text(section.title)
            node += title
            if section.description:
                node += nodes.paragraph(section.description, section.description)
            if section.names:
                note = nodes.paragraph()
                note += nodes.Text("Each ")
                note += _literal(NAME)
                note += nodes.Text(" below is one of ")
                for index, name in enumerate(section.names):
                    if index:
                        note += nodes.Text(", " if index < len(section.names) - 1 else " or ")
                    note += _literal(name)
                note += nodes.Text("; each name has its own copy of these settings.")
                node += note
            node += _settings_list(section.settings)
            self.state.document.note_implicit_target(node, node)
            return node

    class ConfigEnvironment(SphinxDirective):
        """C{clinvk-config-environment}: the variables that override one key each."""

        has_content = False

        def run(self) -> list[nodes.Node]:
            rows = (
                [_literal(variable), _literal(key)]
                for variable, key in environment_overrides(ENVIRONMENT_OVERRIDES)
            )
            return [_table(["Variable", "Overrides"], rows, [50, 50])]

    app.add_directive("clinvk-config-reference", ConfigReference)
    app.add_directive("clinvk-config-environment", ConfigEnvironment)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
