"""Write ``core/semilearn/protocols.py``, the typed mirror of ``core/semilearn/hookspecs.py``.

    python tests/typing/generate_protocols.py            # rewrite protocols.py
    python tests/typing/generate_protocols.py --check    # exit 1 when it is out of date

pluggy calls an implementation with the subset of a hook point's arguments that the
implementation names, so a correct implementation may take any subset. For each hook
point the generated module holds one callback protocol per subset (keyword-only
parameters, the specification's types) and a public alias, the union of them: an
implementation is accepted when it takes some subset of the arguments, each with a type
that accepts what the engine passes, and returns what the hook point expects.

The specification is read with :mod:`ast` (nothing is imported), so this works on a tree
whose dependencies are not installed. Retired hook points (``warn_on_impl``) get no
alias: implementing them is deprecated.
"""

from __future__ import annotations

import ast
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOKSPECS = ROOT / "core" / "semilearn" / "hookspecs.py"
PROTOCOLS = ROOT / "core" / "semilearn" / "protocols.py"

# Names protocols.py imports at run time itself; never repeated from hookspecs.py.
_OWN_NAMES = {"Any", "Generator", "Protocol", "TypeAlias", "TypeVar", "TYPE_CHECKING", "annotations"}


@dataclass(frozen=True)
class Argument:
    """One argument of a hook specification."""

    name: str
    annotation: str


@dataclass(frozen=True)
class Spec:
    """One hook point, as written in hookspecs.py."""

    name: str
    arguments: tuple[Argument, ...]
    returns: str
    firstresult: bool
    historic: bool
    summary: str

    @property
    def alias(self) -> str:
        """The public name of the implementation type: ``after_train_step`` -> ``AfterTrainStep``."""
        return "".join(part.capitalize() for part in self.name.split("_"))


def _is_hookspec(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name) and target.id == "hookspec"


def _option(decorator: ast.expr, name: str) -> bool:
    if not isinstance(decorator, ast.Call):
        return False
    for keyword in decorator.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return bool(keyword.value.value)
    return False


def _retired(decorator: ast.expr) -> bool:
    """Whether a specification is marked ``warn_on_impl`` (a retired hook point)."""
    return isinstance(decorator, ast.Call) and any(keyword.arg == "warn_on_impl" for keyword in decorator.keywords)


def read_specs(source: str) -> list[Spec]:
    """Every hook specification of ``source``, in the order they are written."""
    tree = ast.parse(source)
    specs = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        decorators = [decorator for decorator in node.decorator_list if _is_hookspec(decorator)]
        if not decorators:
            continue
        if _retired(decorators[0]):  # still called for a release; implementing it is deprecated
            continue
        if node.args.vararg or node.args.kwarg or node.args.posonlyargs:
            raise ValueError(f"hook specification {node.name} uses *args, **kwargs or positional-only arguments")
        arguments = []
        for argument in [*node.args.args, *node.args.kwonlyargs]:
            if argument.annotation is None:
                raise ValueError(f"argument {argument.arg} of hook specification {node.name} has no annotation")
            arguments.append(Argument(argument.arg, ast.unparse(argument.annotation)))
        returns = ast.unparse(node.returns) if node.returns is not None else "None"
        docstring = ast.get_docstring(node) or ""
        summary = docstring.strip().split("\n\n")[0].replace("\n", " ")
        specs.append(
            Spec(node.name, tuple(arguments), returns, _option(decorators[0], "firstresult"),
                 _option(decorators[0], "historic"), summary)
        )
    return specs


def _imports(source: str, specs: list[Spec]) -> list[str]:
    """The import statements of hookspecs.py that the annotations need, for a TYPE_CHECKING block."""
    words: set[str] = set()
    for spec in specs:
        for text in [spec.returns, *(argument.annotation for argument in spec.arguments)]:
            words.update(part for part in _identifiers(text))
    lines: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                if bound in words and bound not in _OWN_NAMES:
                    lines.append(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
        elif isinstance(node, ast.ImportFrom):
            names = [
                alias for alias in node.names
                if (alias.asname or alias.name) in words and (alias.asname or alias.name) not in _OWN_NAMES
            ]
            if names:
                module = "." * node.level + (node.module or "")
                rendered = ", ".join(alias.name + (f" as {alias.asname}" if alias.asname else "") for alias in names)
                lines.append(f"from {module} import {rendered}")
    def section(line: str) -> int:
        module = line.split()[1]
        if module.startswith("."):
            return 3
        top = module.split(".")[0]
        return 0 if top in sys.stdlib_module_names else 2 if top == "semilearn" else 1

    result: list[str] = []
    for number in range(4):
        block = [line for line in lines if section(line) == number]
        block = sorted(line for line in block if line.startswith("import ")) + sorted(
            line for line in block if line.startswith("from ")
        )
        if block and result:
            result.append("")
        result.extend(block)
    return result


def _identifiers(text: str) -> list[str]:
    tree = ast.parse(text, mode="eval")
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.append(node.id)
    return names


def _subsets(arguments: tuple[Argument, ...]) -> list[tuple[Argument, ...]]:
    subsets: list[tuple[Argument, ...]] = []
    for size in range(len(arguments), -1, -1):
        subsets.extend(itertools.combinations(arguments, size))
    return subsets


def _class_name(spec: Spec, subset: tuple[Argument, ...]) -> str:
    if not subset:
        return f"_{spec.alias}_without_arguments"
    return f"_{spec.alias}__" + "__".join(argument.name for argument in subset)


HEADER = '''"""Typed hook points: the types mypy checks hook implementations against.

Generated from :mod:`semilearn.hookspecs` by ``python tests/typing/generate_protocols.py``;
do not edit by hand (a test fails when this module and the specifications disagree).

For every hook point ``name`` there is an alias ``Name`` (``after_evaluate`` ->
:data:`AfterEvaluate`): the type of a correct implementation. pluggy passes an
implementation the arguments it names, so an implementation may take any subset of the
hook point's arguments; the alias is the union of one callback protocol per subset, each
with the specification's argument types and return type. Assigning an implementation to
a variable of the alias makes mypy check it::

    from semilearn import protocols

    def _typecheck(plugin: EarlyStopping) -> None:  # never called; read by mypy
        after_evaluate: protocols.AfterEvaluate = plugin.after_evaluate  # noqa: F841

mypy then reports an argument name the hook point does not have, an argument type that
does not accept what the engine passes (``step: str``, or ``metrics: dict`` where the
engine passes a ``Mapping``), and a wrong return type. The error names the union of the
accepted forms. A hook wrapper (``@hookimpl(wrapper=True)``) is checked against
``NameWrapper``: the same arguments, returning a generator.

Nothing here imports torch: argument types are only named in annotations.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar
'''


def render(source: str) -> str:
    """The text of protocols.py for the hook specifications in ``source``."""
    specs = read_specs(source)
    out: list[str] = [HEADER]
    imports = _imports(source, specs)
    if imports:
        out.append("if TYPE_CHECKING:")
        out.extend(f"    {line}" if line else "" for line in imports)
        out.append("")
    exported = ["HOOK_POINTS"]
    for spec in specs:
        exported += [spec.alias, f"{spec.alias}Wrapper"]
    out.append("__all__ = [")
    out.extend(f'    "{name}",' for name in exported)
    out.append("]")
    out.append("")
    out.append('_R_co = TypeVar("_R_co", covariant=True)')
    out.append("")
    out.append("HOOK_POINTS: tuple[str, ...] = (")
    out.extend(f'    "{spec.name}",' for spec in specs)
    out.append(")")
    out.append('"""Every hook point, in the order of :mod:`semilearn.hookspecs`."""')
    for spec in specs:
        signature = ", ".join(f"{argument.name}: {argument.annotation}" for argument in spec.arguments)
        kind = " (firstresult)" if spec.firstresult else " (historic)" if spec.historic else ""
        out.append("")
        out.append("")
        title = f"# {spec.name}({', '.join(argument.name for argument in spec.arguments)}) -> {spec.returns}{kind} "
        out.append(title + "-" * max(3, 100 - len(title)))
        names = []
        for subset in _subsets(spec.arguments):
            name = _class_name(spec, subset)
            names.append(name)
            parameters = "".join(f", {argument.name}: {argument.annotation}" for argument in subset)
            star = ", *" if subset else ""
            out.append("")
            out.append(f"class {name}(Protocol[_R_co]):")
            out.append(f"    def __call__(self{star}{parameters}) -> _R_co: ...")
        out.append("")
        out.append("")
        members = [f"{name}[_R_co]" for name in names]
        out.append(f"_{spec.alias}: TypeAlias = (")
        out.append("    " + members[0])
        out.extend(f"    | {member}" for member in members[1:])
        out.append(")")
        out.append(f'{spec.alias}: TypeAlias = "_{spec.alias}[{spec.returns}]"')
        summary = spec.summary.replace('"""', "'''")
        out.append(f'"""An implementation of ``{spec.name}({signature}) -> {spec.returns}``{kind}: {summary}"""')
        out.append(f'{spec.alias}Wrapper: TypeAlias = "_{spec.alias}[Generator[None, Any, Any]]"')
        out.append(f'"""A hook wrapper of ``{spec.name}`` (``@hookimpl(wrapper=True)``): it yields once."""')
    out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render(HOOKSPECS.read_text(encoding="utf-8"))
    if "--check" in argv:
        current = PROTOCOLS.read_text(encoding="utf-8") if PROTOCOLS.exists() else ""
        if current != text:
            print(f"{PROTOCOLS.relative_to(ROOT)} is out of date: run python tests/typing/generate_protocols.py")
            return 1
        return 0
    PROTOCOLS.write_text(text, encoding="utf-8")
    print(f"wrote {PROTOCOLS.relative_to(ROOT)} ({len(read_specs(HOOKSPECS.read_text(encoding='utf-8')))} hook points)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
