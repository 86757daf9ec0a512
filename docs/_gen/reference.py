"""Reference pages generated from the code at build time (an MkDocs hooks module).

``mkdocs build`` imports this file (``hooks:`` in mkdocs.yml) and

* adds three pages that exist only in the built site, written from the live engine:
  ``reference/configuration.md`` (every key of the engine, of each algorithm and of each
  installed plugin, from their :class:`semilearn.Option` schemas), ``reference/hooks.md``
  (every hook point of :mod:`semilearn.hookspecs`, in lifecycle order) and
  ``reference/cli.md`` (every command of the click group, plugins' commands included);
* replaces markers in the written pages: ``<!-- semilearn:hook-table -->`` (one row per
  hook point) and ``<!-- semilearn:config-section NAME -->`` (the options of plugin NAME);
* drops from the navigation the pages that do not exist (yet), so the build passes while
  a page is being written, and turns links to them into plain text; it logs which (a link
  to a page that is neither in the navigation nor present still fails the strict build);
* turns links to files of the repository outside ``docs/`` (``../core/semilearn/hookspecs.py``,
  which work when the pages are read in the repository) into links to pages of the site
  showing those files (``source/core/semilearn/hookspecs.py/``), so the site stands alone.

The installed plugins decide what the configuration and CLI references hold: CI builds
the docs with every shipped plugin installed. Built with fewer (the core alone, or
plugins turned off with ``SEMILEARN_DISABLE_PLUGINS``, which is honoured), a shipped
plugin's page says where its options would be, and the strict build still passes.
Nothing here is hand-maintained, so the reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import click

log = logging.getLogger("mkdocs.plugins.semilearn")

CONFIG_PAGE = "reference/configuration.md"
HOOKS_PAGE = "reference/hooks.md"
CLI_PAGE = "reference/cli.md"
SOURCE_PREFIX = "source/"
_LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
_FULL_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s#]+\.md)(#[^)\s]*)?\)")
_pending_pages: set[str] = set()  # pages in the navigation that do not exist yet
_MARKER = re.compile(r"<!--\s*semilearn:(hook-table|config-section)\s*([\w-]*)\s*-->")


# ---------------------------------------------------------------------------
# The engine, as the docs see it.
# ---------------------------------------------------------------------------


def load_manager() -> Any:
    """A plugin manager with the installed plugins, as the environment leaves them
    (``SEMILEARN_DISABLE_PLUGINS`` turns plugins off here as in a run)."""
    from semilearn.plugins import PluginManager

    manager = PluginManager().load()
    manager.raise_for_failures()
    return manager


def config_section_markdown(name: str, manager: Any, anchor: str | None = None) -> str:
    """The options table of plugin ``name``; for one of the project's own plugins that is not
    installed here (or turned off), a note saying how to see it, so that the docs build with
    the core alone."""
    from semilearn.plugins import SHIPPED_PLUGINS

    sections = manager.config_sections()
    if name in sections:
        return options_table(sections[name], anchor or f"key-{name}-", key_prefix="")
    if name in SHIPPED_PLUGINS:
        info = manager.infos.get(name)
        state = "turned off" if info is not None else "not installed"
        log.info(f"plugin '{name}' is {state}: its configuration section is left out")
        return (f"*The options of the `{name}` section are listed here when the docs are built with "
                f"{SHIPPED_PLUGINS[name].distribution} installed and active (it is {state} in this build).*\n")
    log.warning(f"no installed plugin named '{name}' has a configuration section")
    return ""


def hook_specs() -> list[tuple[str, Callable[..., Any]]]:
    """Every hook specification, in the order of hookspecs.py (the lifecycle order)."""
    from semilearn import hookspecs

    specs = [(name, value) for name, value in vars(hookspecs).items() if hasattr(value, "semilearn_spec")]
    return sorted(specs, key=lambda item: item[1].__code__.co_firstlineno)


def _spec_sections() -> list[tuple[int, str, str]]:
    """The section comments of hookspecs.py: (line, title, text), in order."""
    from semilearn import hookspecs

    lines = Path(inspect.getfile(hookspecs)).read_text(encoding="utf-8").splitlines()
    sections = []
    index = 0
    while index < len(lines):
        if lines[index].startswith("# ---"):
            end = index + 1
            while end < len(lines) and not lines[end].startswith("# ---"):
                end += 1
            body = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines[index + 1 : end]]
            if body:
                title, _, first = body[0].partition(":")
                sections.append((index + 1, title.strip(), "\n".join([first.strip(), *body[1:]]).strip()))
            index = end + 1
        else:
            index += 1
    return sections


# ---------------------------------------------------------------------------
# reStructuredText bits of the docstrings, as Markdown.
# ---------------------------------------------------------------------------


def rst_to_markdown(text: str, hook_points: Iterable[str] = (), hooks_page: str = "") -> str:
    """The roles and literals of the engine's docstrings, as Markdown."""
    known = set(hook_points)

    def role(match: re.Match[str]) -> str:
        kind, target = match.group(1), match.group(2).lstrip("~")
        short = target.split(".")[-1] if match.group(2).startswith("~") else target
        if kind == "func" and target in known:
            return f"[`{target}`]({hooks_page}#{target})"
        return f"`{short}`"

    text = re.sub(r":(?:py:)?(func|class|mod|data|meth|attr|exc):`([^`]+)`", role, text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return text.replace("::\n", ":\n")


def _table_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _split_fields(docstring: str) -> tuple[str, list[tuple[str, str]], str]:
    """Body, ``:param name:`` fields and ``:return:`` of a Sphinx-style docstring."""
    body: list[str] = []
    params: list[tuple[str, str]] = []
    returns: list[str] = []
    current: list[str] | None = None
    for line in docstring.splitlines():
        param = re.match(r"^:param (\w+):\s*(.*)$", line)
        ret = re.match(r"^:returns?:\s*(.*)$", line)
        if param:
            params.append((param.group(1), param.group(2)))
            current = None
        elif ret:
            returns.append(ret.group(1))
            current = returns
        elif (params or returns) and line.startswith("    ") and line.strip():
            if current is returns:
                returns.append(line.strip())
            else:
                name, text = params[-1]
                params[-1] = (name, f"{text} {line.strip()}")
        elif not (params or returns):
            body.append(line)
    return "\n".join(body).strip(), params, " ".join(returns)


# ---------------------------------------------------------------------------
# The hook reference.
# ---------------------------------------------------------------------------


def _kind(function: Callable[..., Any]) -> str:
    options = getattr(function, "semilearn_spec", {}) or {}
    if options.get("firstresult"):
        return "firstresult"
    if options.get("historic"):
        return "historic"
    return ""


def hooks_markdown() -> str:
    """The hook reference: every hook point with its signature, rules and arguments."""
    from semilearn import hookspecs

    specs = hook_specs()
    names = [name for name, _ in specs]
    sections = _spec_sections()
    out = [
        "# Hook reference",
        "",
        "Generated from `semilearn/hookspecs.py`, the contract between the engine and",
        "its plugins; hook points appear in the order they fire. The typed form of each hook",
        "point is in `semilearn.protocols` ([typed hook points](../writing-plugins.md#check-it-with-mypy)).",
        "",
        rst_to_markdown(inspect.getdoc(hookspecs) or "", names),
        "",
        "| hook point | kind | arguments |",
        "|---|---|---|",
    ]
    for name, function in specs:
        arguments = ", ".join(inspect.signature(function).parameters)
        out.append(f"| [`{name}`](#{name}) | {_kind(function)} | {arguments} |")
    out.append("")
    current_section = None
    for name, function in specs:
        line = function.__code__.co_firstlineno
        section = None
        for start, title, text in sections:
            if start <= line:
                section = (title, text)
        if section is not None and section != current_section:
            current_section = section
            out += ["", f"## {section[0]}", "", rst_to_markdown(section[1], names), ""]
        signature = inspect.signature(function)
        parameters = ", ".join(f"{parameter.name}: {parameter.annotation}"
                               for parameter in signature.parameters.values())
        kind = _kind(function)
        body, params, returns = _split_fields(inspect.getdoc(function) or "")
        annotations = {parameter.name: parameter.annotation for parameter in signature.parameters.values()}
        out += [
            f"### {name} {{ #{name} }}",
            "",
            "```python",
            f"@hookspec{'(' + kind + '=True)' if kind else ''}",
            f"def {name}({parameters}) -> {signature.return_annotation}",
            "```",
            "",
            rst_to_markdown(body, names),
            "",
        ]
        documented = dict(params)
        rows = [(argument, annotations[argument], documented.get(argument, "")) for argument in annotations]
        if rows:
            out += ["| argument | type | meaning |", "|---|---|---|"]
            out += [f"| `{argument}` | `{_table_cell(str(annotation))}` | "
                    f"{_table_cell(rst_to_markdown(text, names))} |" for argument, annotation, text in rows]
            out.append("")
        if returns:
            out += [f"**Returns** {rst_to_markdown(returns, names)}", ""]
    return "\n".join(out) + "\n"


def hook_table_markdown(hooks_page: str) -> str:
    """One row per hook point (name, kind, first sentence), for the concepts page."""
    specs = hook_specs()
    names = [name for name, _ in specs]
    rows = ["| hook point | kind | fires |", "|---|---|---|"]
    for name, function in specs:
        summary = (inspect.getdoc(function) or "").split("\n\n")[0]
        rows.append(f"| [`{name}`]({hooks_page}#{name}) | {_kind(function)} | "
                    f"{_table_cell(rst_to_markdown(summary, names, hooks_page))} |")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------
# The configuration reference.
# ---------------------------------------------------------------------------


def _default(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def _allowed(option: Any) -> str:
    if option.choices is not None:
        return ", ".join(f"`{_default(choice)}`" for choice in option.choices)
    bounds = []
    if option.minimum is not None:
        bounds.append(f"{'>' if option.exclusive_minimum else '≥'} {option.minimum:g}")
    if option.maximum is not None:
        bounds.append(f"≤ {option.maximum:g}")
    return " and ".join(bounds)


def options_table(options: Sequence[Any], anchor_prefix: str, key_prefix: str = "") -> str:
    """A Markdown table of :class:`semilearn.Option` s: key, type, default, allowed, USB name, meaning."""
    rows = ["| key | type | default | allowed | USB name | meaning |", "|---|---|---|---|---|---|"]
    for option in options:
        anchor = f"{anchor_prefix}{option.name}"
        aliases = "".join(f" (also `{alias}`)" for alias in option.aliases)
        usb = f"`{option.name}`" if option.usb else "—"
        if option.usb and option.aliases:
            usb += "".join(f", `{alias}`" for alias in option.aliases)
        rows.append(
            f'| <span id="{anchor}"></span>`{key_prefix}{option.name}`{aliases} | {option.type_name} | '
            f"`{_default(option.default)}` | {_allowed(option)} | {usb} | {_table_cell(option.help)} |"
        )
    return "\n".join(rows) + "\n"


def configuration_markdown(manager: Any) -> str:
    """Every configuration key: the engine's, each algorithm's, each installed plugin's section."""
    from semilearn.config import CORE_OPTIONS

    algorithms = manager.registry("algorithm")
    sections = manager.config_sections()
    out = [
        "# Configuration reference",
        "",
        "Generated from the schema: the engine's keys (`semilearn.config.CORE_OPTIONS`), each",
        "algorithm's `config_options` and each installed plugin's `config_options`, as",
        "`semilearn config show --schema` prints them. How files, `--set` and errors work:",
        "[configuration](../configuration.md). *USB name*: the key exists under this name in",
        "USB's configuration files.",
        "",
        "## Engine keys",
        "",
        "Top-level keys of every run.",
        "",
        options_table(CORE_OPTIONS, "key-"),
        "## Algorithm keys",
        "",
        "Top-level keys of the algorithm chosen with `algorithm`; a key of another algorithm is",
        "ignored with a warning.",
        "",
    ]
    for name, cls in algorithms.items():
        owner = algorithms.owner(name)
        description = algorithms.description(name)
        out += [f"### {name} {{ #algorithm-{name} }}", ""]
        if description:
            out += [_table_cell(description), ""]
        if owner and owner != "catalog":
            out += [f"Registered by plugin `{owner}`.", ""]
        options = tuple(cls.config_options)
        out += [options_table(options, f"key-{name}-") if options else "No keys of its own.", ""]
    out += [
        "## Plugin sections",
        "",
        "Each plugin with options owns the section named after it (`checkpoint: {interval: 200}`,",
        "or `--set checkpoint.interval=200`); a section of a plugin that is not installed is",
        "ignored with a warning.",
        "",
    ]
    for name, options in sections.items():
        info = manager.infos[name]
        origin = "built in" if info.builtin else f"distribution `{info.distribution}` {info.version}"
        out += [f"### {name} {{ #section-{name} }}", "", f"Plugin `{name}` ({origin}).", "",
                options_table(options, f"key-{name}-", key_prefix=f"{name}."), ""]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# The CLI reference.
# ---------------------------------------------------------------------------


def command_owners(manager: Any) -> dict[str, str]:
    """Top-level command name -> the plugin whose ``register_commands`` adds it."""
    owners = {}
    for impl in manager.hook.register_commands.get_hookimpls():
        group = click.Group("probe")
        impl.function(cli=group)
        for command in group.commands:
            owners[command] = impl.plugin_name
    return owners


def walk_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command below ``group`` (groups included), depth first, by name."""
    found = []
    for name in sorted(group.commands):
        command = group.commands[name]
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += walk_commands(command, (*path, name))
    return found


def cli_anchor(path: Sequence[str]) -> str:
    return "cli-" + "-".join(path) if path else "cli"


def _help_text(command: click.Command) -> str:
    text = inspect.cleandoc(command.help or command.short_help or "")
    return text.replace("\b\n", "")


def _options_rows(command: click.Command, context: click.Context) -> list[str]:
    rows = []
    for parameter in command.get_params(context):
        record = parameter.get_help_record(context)
        if record is None:
            continue
        names, text = record
        rows.append(f"| `{_table_cell(names)}` | {_table_cell(text)} |")
    return rows


def cli_markdown(manager: Any) -> str:
    """Every command: usage, help and options, with the plugin that adds it."""
    from semilearn.cli import build_cli

    group = build_cli(manager)
    owners = command_owners(manager)
    root = click.Context(group, info_name="semilearn")
    out = [
        "# CLI reference",
        "",
        "Generated from the click commands of `semilearn`, with every shipped plugin installed;",
        "plugins add commands through the `register_commands` hook point. Every command takes",
        "`--debug` (tracebacks of errors) and `-h` / `--help`.",
        "",
        f'## semilearn {{ #{cli_anchor(())} }}',
        "",
        "```",
        group.get_usage(root),
        "```",
        "",
        _help_text(group),
        "",
        "| option | meaning |",
        "|---|---|",
        *_options_rows(group, root),
        "",
    ]
    contexts: dict[tuple[str, ...], click.Context] = {(): root}
    for path, command in walk_commands(group):
        parent = contexts[path[:-1]]
        context = click.Context(command, info_name=path[-1], parent=parent)
        contexts[path] = context
        owner = owners.get(path[0], "")
        info = manager.infos.get(owner)
        origin = ""
        if info is not None and not info.builtin:
            origin = f"Added by plugin `{owner}` (distribution `{info.distribution}`)."
        elif owner and owner != "catalog":
            origin = f"Added by the built-in plugin `{owner}`."
        rows = _options_rows(command, context)
        level = "#" * min(2 + len(path) - 1, 4)
        out += [f"{level} semilearn {' '.join(path)} {{ #{cli_anchor(path)} }}", ""]
        if origin:
            out += [origin, ""]
        out += ["```", command.get_usage(context), "```", "", _help_text(command), ""]
        if isinstance(command, click.Group):
            out += ["Commands: " + ", ".join(f"[`{name}`](#{cli_anchor((*path, name))})"
                                             for name in sorted(command.commands)), ""]
        if rows:
            out += ["| option | meaning |", "|---|---|", *rows, ""]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# MkDocs events.
# ---------------------------------------------------------------------------


def _nav_paths(nav: Any) -> Iterable[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_paths(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_paths(item)


def prune_nav(nav: Any, exists: Callable[[str], bool]) -> Any:
    """``nav`` without the pages that do not exist (and without sections left empty)."""
    if isinstance(nav, str):
        if nav.endswith(".md") and not re.match(r"^[a-z]+://", nav) and not exists(nav):
            return None
        return nav
    if isinstance(nav, dict):
        pruned = {}
        for title, value in nav.items():
            kept = prune_nav(value, exists)
            if kept is not None and kept != []:
                pruned[title] = kept
        return pruned or None
    if isinstance(nav, list):
        kept_items = [kept for kept in (prune_nav(item, exists) for item in nav) if kept is not None]
        return kept_items or None
    return nav


def _repository_root(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def _outside_target(page_uri: str, target: str, config: Any) -> Path | None:
    """The repository file a relative link of a page points to, when it is outside docs/."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
        return None
    docs = Path(config["docs_dir"]).resolve()
    resolved = (docs / page_uri).parent.joinpath(target).resolve()
    root = _repository_root(config)
    if resolved.is_relative_to(docs) or not resolved.is_relative_to(root):
        return None
    if resolved.is_dir() and (resolved / "__init__.py").is_file():
        return resolved / "__init__.py"  # a Python package: its __init__.py
    return resolved


def _linked_sources(config: Any) -> dict[str, Path]:
    """Repository files (outside docs/) that the written pages link to: site path -> file."""
    docs = Path(config["docs_dir"]).resolve()
    root = _repository_root(config)
    found = {}
    for page in sorted(docs.rglob("*.md")):
        uri = page.relative_to(docs).as_posix()
        if uri.startswith("_gen/"):
            continue
        for match in _LINK.finditer(page.read_text(encoding="utf-8")):
            target = _outside_target(uri, match.group(2), config)
            if target is not None and target.is_file():
                found[SOURCE_PREFIX + target.relative_to(root).as_posix() + ".md"] = target
    return found


def source_markdown(path: Path, root: Path) -> str:
    """A page showing one file of the repository."""
    relative = path.relative_to(root).as_posix()
    language = {".py": "python", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".md": "markdown"}
    fence = "````"
    return (f"# {relative}\n\nThe file `{relative}` of the repository.\n\n"
            f"{fence}{language.get(path.suffix, 'text')}\n{path.read_text(encoding='utf-8')}\n{fence}\n")


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File, InclusionLevel

    root = _repository_root(config)
    for uri, source in _linked_sources(config).items():
        files.append(File.generated(config, uri, content=source_markdown(source, root),
                                    inclusion=InclusionLevel.NOT_IN_NAV))

    manager = load_manager()
    generated = {
        CONFIG_PAGE: configuration_markdown(manager),
        HOOKS_PAGE: hooks_markdown(),
        CLI_PAGE: cli_markdown(manager),
    }
    for uri, text in generated.items():
        files.append(File.generated(config, uri, content=text))
    if config.get("nav"):
        present = {file.src_uri for file in files}
        missing = sorted(path for path in _nav_paths(config["nav"]) if path.endswith(".md") and path not in present)
        _pending_pages.clear()
        _pending_pages.update(missing)
        if missing:
            log.info("not in the navigation until they exist: " + ", ".join(missing))
            config["nav"] = prune_nav(config["nav"], lambda path: path in present)
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    depth = page.file.src_uri.count("/")
    hooks_page = "../" * depth + HOOKS_PAGE
    root = _repository_root(config)

    def relink(match: re.Match[str]) -> str:
        if page.file.src_uri.startswith(SOURCE_PREFIX) or page.file.generated_by:
            return match.group(0)
        target = _outside_target(page.file.src_uri, match.group(2), config)
        if target is None:
            return match.group(0)
        relative = target.relative_to(root).as_posix()
        if target.is_file():
            return f"{match.group(1)}{'../' * depth}{SOURCE_PREFIX}{relative}.md{match.group(3) or ''}{match.group(4)}"
        return match.group(0)  # a folder: left to MkDocs, which reports it

    markdown = _LINK.sub(relink, markdown)

    def unlink_pending(match: re.Match[str]) -> str:
        target = (Path(page.file.src_uri).parent / match.group(2)).as_posix()
        target = re.sub(r"(^|/)[^/]+/\.\./", r"\1", target).removeprefix("./")
        if target in _pending_pages:
            log.info(f"{page.file.src_uri}: {target} does not exist yet; its link is plain text")
            return match.group(1)
        return match.group(0)

    markdown = _FULL_LINK.sub(unlink_pending, markdown)

    def replace(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind == "hook-table":
            return hook_table_markdown(hooks_page)
        return config_section_markdown(argument, load_manager())

    return _MARKER.sub(replace, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Sphinx roles left in docstrings rendered by mkdocstrings (``:class:`Hook```)."""
    return re.sub(r":(?:py:)?(?:func|class|mod|data|meth|attr|exc):<code>~?([^<]+)</code>",
                  lambda match: f"<code>{match.group(1).split('.')[-1]}</code>", html)
