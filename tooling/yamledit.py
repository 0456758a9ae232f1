"""The byte-preserving YAML editor: write an image at a path of a Helm values file, changing nothing else.

Values files are edited by people: their comments, key order, quoting,
indentation and line endings belong to them. So this stage never dumps a
file. ruamel.yaml parses it only to find where things are (the composer's
nodes carry the exact source span of every value); the new text is spliced
into the original text, and the result is parsed again and compared with the
original (as small typed trees: `ScalarTree`, `AliasTree`, `MapTree`,
`SeqTree`). A difference beyond the intended values is refused before a byte
is written, and so is anything ambiguous: duplicate keys, a path that does not
exist, an alias at the target.

1. `parse_path` reads `KEY.KEY[INDEX]...` into `PathKey`s.
2. `edit_image` returns a file's text before and after writing the image at
   its paths, verified; it writes nothing.
3. `read_image_at` reads the image a path holds.

Helm reads values as YAML 1.1 (`yes` is true, `20200605` and `2020.06` are
numbers), ruamel.yaml as YAML 1.2; a tag or name that either would read as
anything but a string is written quoted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tokens import ScalarToken

from tooling.errors import ToolingError
from tooling.images import ImageReference

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"

_PATH = re.compile(r"(?:[^.\[\]]+|\[\d+\])(?:\.[^.\[\]]+|\[\d+\])*")
_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")
# Keys --create may write unquoted; anything else a person adds by hand.
_CREATABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

_RESOLVERS = (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))

# One step of a YAML path: a mapping key or a list index.
PathKey = str | int

SCALAR_FORM = "NAME:TAG string"
MAPPING_FORM = "name/tag mapping"


# ---------------------------------------------------------------- YAML paths


def parse_path(path: str) -> tuple[PathKey, ...]:
    """`jupyterhub.singleuser.profileList[0].kubespawner_override.image` as keys and list indexes."""
    if not _PATH.fullmatch(path):
        raise ToolingError(
            f"YAML path {path!r} is not of the form KEY.KEY[INDEX]..., "
            "e.g. jupyterhub.singleuser.profileList[0].kubespawner_override.image."
        )
    return tuple(int(match[2]) if match[2] is not None else match[1] for match in _PATH_STEP.finditer(path))


def format_path(steps: Sequence[PathKey]) -> str:
    text = ""
    for step in steps:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


# ---------------------------------------------------------------- what an edit did


@dataclass(frozen=True)
class LocationChange:
    file: str  # the file's label
    path: str
    line: int  # where the value is in the file as written
    form: str  # SCALAR_FORM or MAPPING_FORM
    old: str | None  # the image as it was written; None when --create added it
    new: str
    changed: bool
    also_read_at: tuple[int, ...] = ()  # lines of aliases that read the changed value too


# ---------------------------------------------------------------- one file


@dataclass(frozen=True)
class _Intent:
    """What one path should hold afterwards, for the final comparison."""

    steps: tuple[PathKey, ...]
    form: str


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _PathWrite:
    """One --path to write `image` at."""

    path: str
    steps: tuple[PathKey, ...]
    image: ImageReference
    create: bool


@dataclass(frozen=True)
class _Plan:
    edits: tuple[_Edit, ...]
    change: LocationChange
    intent: _Intent


def edit_image(
    file: Path, label: str, paths: Sequence[str], image: ImageReference, create: bool
) -> tuple[str, str, list[LocationChange]]:
    """The file's text before and after writing `image` at `paths`, verified; nothing is written here."""
    original = _read(file, label)
    requests = [_PathWrite(path, parse_path(path), image, create) for path in paths]
    # Plan every path against the file as it is first, so that any refusal
    # names the lines a person sees in their editor; a path after an edit is
    # planned again against the edited text.
    first_plans = [_plan(original, request) for request in requests]
    doc = original
    changes, intents = [], []
    for request, first_plan in zip(requests, first_plans, strict=True):
        plan = first_plan if doc is original else _plan(doc, request)
        changes.append(plan.change)
        intents.append(plan.intent)
        if plan.edits:
            doc = _reparse(_splice(doc.text, plan.edits), label, request.path)
    _verify(original, doc, intents, image)
    return original.text, doc.text, changes


def _splice(text: str, edits: Sequence[_Edit]) -> str:
    for edit in sorted(edits, key=lambda edit: edit.start, reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


def _reparse(text: str, label: str, path: str) -> _Document:
    try:
        return _parse(text, label)
    except ToolingError as exc:
        raise ToolingError(
            f"{label}: writing {path} would leave the file unreadable ({exc.message}); nothing was written. "
            "This is a bug in hubship: please report it with the file."
        ) from None


def _verify(before: _Document, after: _Document, intents: Sequence[_Intent], image: ImageReference) -> None:
    """Refuse unless `after` reads exactly as `before` with the intended values written."""
    expected = _tree(before, before.root)
    for intent in intents:
        expected = _expect(expected, intent.steps, intent.form, image)
    actual = _tree(after, after.root)
    if actual != expected:
        raise ToolingError(
            f"{before.label}: the edit would change more than the image (first difference at "
            f"{_first_difference(expected, actual)}); nothing was written. "
            "This is a bug in hubship: please report it with the file."
        )


# ---------------------------------------------------------------- reading


def read_image_at(file: Path, label: str, path: str) -> ImageReference:
    """The image a values file holds at a path, refusing anything Helm would not read as that image."""
    doc = _read(file, label)
    found = _locate(doc, parse_path(path))
    if isinstance(found, _Missing):
        raise _missing_refusal(doc, path, found)
    node = found.node
    if isinstance(node, ScalarNode):
        _require_string(doc, node, path)
        return ImageReference.parse(node.value, source=_at(doc, node))
    if not isinstance(node, MappingNode):
        raise _wrong_kind(doc, node, path, "an image (a NAME:TAG string or a mapping with name and tag)")
    parts = []
    for field in ("name", "tag"):
        pair = _find_key(node, field)
        if pair is None:
            raise ToolingError(f"{_at(doc, node)}: {path} has no {field!r} key, so it holds no whole image.")
        field_path = f"{path}.{field}"
        _refuse_alias_site(doc, node, pair[0], pair[1], field_path)
        _require_string(doc, pair[1], field_path)
        parts.append(pair[1].value)
    return ImageReference.parse(":".join(parts), source=f"{_at(doc, node)} ({path})")


@dataclass(frozen=True)
class _AliasUse:
    anchor: str
    line: int
    end: int  # index just after `*anchor`
    node: Node  # the anchored node it reads


class _AliasRecordingComposer(Composer):
    """Records where each alias is written: in the composed graph an alias is just its anchor's node."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.alias_uses: dict[tuple[int, int], _AliasUse] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event() if self.parser.check_event(AliasEvent) else None
        node = super().compose_node(parent, index)
        if event is not None:
            self.alias_uses[_site(parent, index)] = _AliasUse(
                event.anchor, event.start_mark.line + 1, event.end_mark.index, node
            )
        return node


def _site(parent: Any, index: Any) -> tuple[int, int]:
    """Where a child sits: its parent, and its list index or (for a mapping value) its key node."""
    return id(parent), index if isinstance(index, int) else id(index)


@dataclass(frozen=True)
class _Document:
    label: str
    text: str
    root: Node | None
    alias_uses: Mapping[tuple[int, int], _AliasUse]
    scalar_starts: Mapping[int, int]  # end index -> start index of each scalar's own text (after &anchor, !tag)

    def alias_at(self, parent: Node, site: Node | int) -> _AliasUse | None:
        return self.alias_uses.get(_site(parent, site))


def _read(file: Path, label: str) -> _Document:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ToolingError(f"{label}: no such file.") from None
    except OSError as exc:
        raise ToolingError(f"{label}: cannot read it ({exc.strerror}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolingError(f"{label}: not UTF-8 text (byte {exc.start}); Helm values files are UTF-8.") from None
    return _parse(text, label)


def _parse(text: str, label: str) -> _Document:
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = _AliasRecordingComposer
    try:
        roots = list(yaml.compose_all(text))
        starts = {
            token.end_mark.index: token.start_mark.index for token in yaml.scan(text) if isinstance(token, ScalarToken)
        }
    except YAMLError as exc:
        raise _invalid_yaml(label, text, exc) from None
    if len(roots) > 1:
        raise ToolingError(f"{label}: holds {len(roots)} YAML documents; a Helm values file is one document.")
    doc = _Document(label, text, roots[0] if roots else None, yaml.composer.alias_uses, starts)
    _refuse_duplicate_keys(doc)
    _refuse_unloadable(doc)
    return doc


def _invalid_yaml(label: str, text: str, exc: YAMLError) -> ToolingError:
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        where = f"{label}:{mark.line + 1}:{mark.column + 1}"
    elif isinstance(exc, ReaderError):
        line_start = text.rfind("\n", 0, exc.position) + 1
        what = f"character {exc.character:#06x} is not allowed in YAML"
        where = f"{label}:{text.count(chr(10), 0, exc.position) + 1}:{exc.position - line_start + 1}"
    else:
        what, where = str(exc).strip().splitlines()[0], label
    return ToolingError(f"{where}: not valid YAML: {what}. Fix the file and run again.")


def _refuse_duplicate_keys(doc: _Document) -> None:
    """Refuse a mapping that repeats a key: readers disagree on which wins, and a rewrite can drop one."""
    for where, mapping in _mappings(doc):
        first_at: dict[tuple[str | None, str], int] = {}
        for index, (key, _) in enumerate(mapping.value):
            if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
                continue
            first = first_at.setdefault((key.tag, key.value), index)
            if first != index:
                first_line = mapping.value[first][0].start_mark.line + 1
                again_line = key.start_mark.line + 1
                raise ToolingError(
                    f"{doc.label}:{again_line}: duplicate key {key.value!r} in {where or 'the top-level mapping'} "
                    f"(lines {first_line} and {again_line}). YAML readers disagree on which one counts and a "
                    "rewrite can silently drop one, so nothing was written. Merge them into one key and run again."
                )


def _refuse_unloadable(doc: _Document) -> None:
    """Load the whole file once: ruamel.yaml's own checks (e.g. keys equal as values, 0x10 and 16) apply too."""
    try:
        YAML(typ="rt", pure=True).load(doc.text)
    except DuplicateKeyError as exc:
        raise ToolingError(
            f"{doc.label}:{exc.problem_mark.line + 1}: {exc.problem} in the mapping that starts at line "
            f"{exc.context_mark.line + 1}; nothing was written. Merge them into one key and run again."
        ) from None
    except YAMLError as exc:
        raise _invalid_yaml(doc.label, doc.text, exc) from None


def _mappings(doc: _Document) -> Iterator[tuple[str, MappingNode]]:
    """Every mapping written in the file, with its path; aliases are not followed."""
    if doc.root is None:
        return
    pending: list[tuple[str, Node]] = [("", doc.root)]
    while pending:
        where, node = pending.pop()
        if isinstance(node, MappingNode):
            yield where, node
            pending.extend(
                (f"{where}.{key.value}" if where else str(key.value), value)
                for key, value in node.value
                if doc.alias_at(node, key) is None
            )
        elif isinstance(node, SequenceNode):
            pending.extend(
                (f"{where}[{index}]", item)
                for index, item in enumerate(node.value)
                if doc.alias_at(node, index) is None
            )


# ---------------------------------------------------------------- finding a path


@dataclass(frozen=True)
class _Found:
    node: Node
    key: Node | None  # the mapping key whose value it is
    chain: tuple[Node, ...]  # the nodes from the root down to it


@dataclass(frozen=True)
class _Missing:
    parent: Node | None  # the deepest node on the path that exists; None for an empty document
    parent_key: Node | None  # the key whose (empty) value `parent` is
    holder: MappingNode | None  # the mapping that holds parent_key
    found: tuple[PathKey, ...]
    missing: tuple[PathKey, ...]


def _locate(doc: _Document, steps: tuple[PathKey, ...]) -> _Found | _Missing:
    node, key, holder = doc.root, None, None
    chain: list[Node] = []
    for depth, step in enumerate(steps):
        if node is None or _is_empty(node):
            return _Missing(node, key, holder, steps[:depth], steps[depth:])
        chain.append(node)
        child = _child(doc, node, steps[: depth + 1], step)
        if child is None:
            return _Missing(node, key, holder, steps[:depth], steps[depth:])
        holder = node if isinstance(node, MappingNode) else None
        key, node = child
    assert node is not None  # a path has at least one step, and each step found a node
    return _Found(node, key, (*chain, node))


def _child(doc: _Document, node: Node, steps: tuple[PathKey, ...], step: PathKey) -> tuple[Node | None, Node] | None:
    """The key and node at `step` below `node`; None when a mapping lacks the key."""
    above = format_path(steps[:-1]) or "the document"
    if isinstance(step, int):
        if not isinstance(node, SequenceNode):
            raise _wrong_kind(doc, node, above, f"a list, so it has no [{step}]")
        if step >= len(node.value):
            count = len(node.value)
            raise ToolingError(
                f"{_at(doc, node)}: {above} has {count} item{'s' if count != 1 else ''}, so {format_path(steps)} "
                "does not exist (--create adds mapping keys, never list items)."
            )
        _refuse_alias_site(doc, node, step, node.value[step], format_path(steps))
        return None, node.value[step]
    if not isinstance(node, MappingNode):
        raise _wrong_kind(doc, node, above, f"a mapping, so it has no key {step!r}")
    pair = _find_key(node, step)
    if pair is None:
        _refuse_merged(doc, node, steps, step)
        return None
    _refuse_alias_site(doc, node, pair[0], pair[1], format_path(steps))
    return pair


def _find_key(mapping: MappingNode, name: str) -> tuple[Node, Node] | None:
    for key, value in mapping.value:
        if isinstance(key, ScalarNode) and key.tag != MERGE_TAG and key.value == name:
            return key, value
    return None


def _refuse_alias_site(doc: _Document, parent: Node, site: Node | int, child: Node, path: str) -> None:
    use = doc.alias_at(parent, site)
    if use is not None:
        raise ToolingError(
            f"{doc.label}:{use.line}: {path} is the alias *{use.anchor} of the anchor &{use.anchor} at line "
            f"{child.start_mark.line + 1}; changing it would change every other user of that anchor. "
            f"Give {path} a value of its own, or write the image at the anchored value instead."
        )


def _refuse_merged(doc: _Document, mapping: MappingNode, steps: tuple[PathKey, ...], step: str) -> None:
    """A key a mapping only has through a merge (<<: *base) belongs to the anchored mapping: refuse."""
    for key, value in mapping.value:
        if not (isinstance(key, ScalarNode) and key.tag == MERGE_TAG):
            continue
        sources = value.value if isinstance(value, SequenceNode) else [value]
        for source in sources:
            if isinstance(source, MappingNode) and _find_key(source, step) is not None:
                origin = f"the anchor &{source.anchor}" if source.anchor else "the mapping"
                raise ToolingError(
                    f"{doc.label}:{key.start_mark.line + 1}: {format_path(steps)} comes from the merge key '<<' "
                    f"({origin} at line {source.start_mark.line + 1}); changing it there would change every "
                    f"mapping that merges it. Write {step}: here by hand to override it, or change the merged one."
                )


def _missing_refusal(doc: _Document, path: str, missing: _Missing) -> ToolingError:
    what = missing.missing[0]
    lacking = f"has no [{what}]" if isinstance(what, int) else f"has no key {what!r}"
    anchor = missing.parent_key or missing.parent
    line = anchor.start_mark.line + 1 if anchor is not None else 1
    return ToolingError(
        f"{doc.label}:{line}: {path} does not exist: {format_path(missing.found) or 'the document'} {lacking}. "
        "Check the path, or pass --create to add it."
    )


def _wrong_kind(doc: _Document, node: Node, path: str, expected: str) -> ToolingError:
    return ToolingError(f"{_at(doc, node)}: {path} is {_describe(node)}, not {expected}.")


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    assert isinstance(node, ScalarNode)
    if _is_empty(node):
        return "empty"
    if node.style in ("|", ">"):
        return f"a block scalar ({node.style})"
    kind = str(node.tag).rsplit(":", 1)[-1]
    return f"{node.value!r} (a YAML {kind})"


def _at(doc: _Document, node: Node) -> str:
    return f"{doc.label}:{node.start_mark.line + 1}"


def _is_empty(node: Node) -> bool:
    """A key with nothing after it (`image:`): no text to replace, only a place to insert at."""
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG and node.start_mark.index == node.end_mark.index


# ---------------------------------------------------------------- planning edits


def _plan(doc: _Document, request: _PathWrite) -> _Plan:
    path = request.path
    found = _locate(doc, request.steps)
    if isinstance(found, _Missing):
        return _plan_creation(doc, request, found)
    node = found.node
    if isinstance(node, MappingNode):
        return _plan_mapping(doc, request, node, found.chain)
    if isinstance(node, ScalarNode) and not _is_empty(node) and node.tag == STR_TAG and node.style not in ("|", ">"):
        new = str(request.image)
        edits = () if _holds(node, new) else (_replace(doc, node, new, in_flow=_in_flow(found.chain)),)
        change = LocationChange(
            doc.label,
            path,
            node.start_mark.line + 1,
            SCALAR_FORM,
            node.value,
            new,
            bool(edits),
            _readers(doc, found.chain),
        )
        return _Plan(edits, change, _Intent(request.steps, SCALAR_FORM))
    expected = "an image: a NAME:TAG string or a mapping with name and tag keys"
    if _is_empty(node) and found.key is not None:
        # An empty value has no text of its own; its key says where it is.
        raise ToolingError(f"{_at(doc, found.key)}: {path} is empty, not {expected}; write a placeholder there first.")
    raise _wrong_kind(doc, node, path, expected)


def _plan_mapping(doc: _Document, request: _PathWrite, mapping: MappingNode, chain: tuple[Node, ...]) -> _Plan:
    """The z2jh form: `image: {name: ..., tag: ...}`; only the fields that differ change."""
    path, image = request.path, request.image
    wanted = {"name": image.name, "tag": image.tag}
    pairs = {field: _find_key(mapping, field) for field in wanted}
    absent = [field for field, pair in pairs.items() if pair is None]
    if absent and not request.create:
        lacking = "name and tag keys" if len(absent) == 2 else f"a {absent[0]!r} key"
        raise ToolingError(
            f"{_at(doc, mapping)}: {path} is a mapping without {lacking}; an image mapping has name and tag "
            "(or use the NAME:TAG string form). Add them, or pass --create."
        )
    edits: list[_Edit] = []
    old: dict[str, str] = {}
    readers: set[int] = set(_readers(doc, chain))
    for field, pair in pairs.items():
        if pair is None:
            continue
        key, value = pair
        field_path = f"{path}.{field}"
        _refuse_alias_site(doc, mapping, key, value, field_path)
        if not isinstance(value, ScalarNode) or value.style in ("|", ">"):
            raise _wrong_kind(doc, value, field_path, "a plain or quoted scalar")
        old[field] = value.value
        if not _holds(value, wanted[field]):
            edits.append(
                _insert_after_colon(doc, key, wanted[field], in_flow=mapping.flow_style)
                if _is_empty(value)
                else _replace(doc, value, wanted[field], in_flow=mapping.flow_style)
            )
            readers.update(_readers(doc, (*chain, value)))
    if absent:
        lines = [(0, f"{field}: {_render(wanted[field])}") for field in absent]
        edits.append(_insert_lines(doc, path, lines, parent=mapping))
    change = LocationChange(
        doc.label,
        path,
        mapping.start_mark.line + 1,
        MAPPING_FORM,
        f"{old.get('name', '')}:{old.get('tag', '')}" if old else None,
        str(image),
        bool(edits),
        tuple(sorted(readers)),
    )
    return _Plan(tuple(edits), change, _Intent(request.steps, MAPPING_FORM))


def _plan_creation(doc: _Document, request: _PathWrite, missing: _Missing) -> _Plan:
    path, steps, image = request.path, request.steps, request.image
    if not request.create:
        raise _missing_refusal(doc, path, missing)
    index = next((step for step in missing.missing if isinstance(step, int)), None)
    if index is not None:
        raise ToolingError(f"{doc.label}: {path}: --create adds mapping keys, never list items ([{index}]).")
    keys = [str(step) for step in missing.missing]
    odd = next((key for key in keys if not _CREATABLE_KEY.fullmatch(key) or not _reads_as_string(key)), None)
    if odd is not None:
        raise ToolingError(f"{doc.label}: {path}: --create does not write the key {odd!r}; add it by hand.")
    # KubeSpawner's `image` (under kubespawner_override) is one string; chart
    # values such as z2jh's singleuser.image are a name/tag mapping.
    form = SCALAR_FORM if len(steps) >= 2 and steps[-2] == "kubespawner_override" else MAPPING_FORM
    lines = [(depth, f"{key}:") for depth, key in enumerate(keys[:-1])]
    leaf = len(keys) - 1
    if form == SCALAR_FORM:
        lines.append((leaf, f"{keys[-1]}: {_render(str(image))}"))
    else:
        lines += [
            (leaf, f"{keys[-1]}:"),
            (leaf + 1, f"name: {_render(image.name)}"),
            (leaf + 1, f"tag: {_render(image.tag)}"),
        ]
    edit = _insert_lines(doc, path, lines, parent=missing.parent, parent_key=missing.parent_key, holder=missing.holder)
    first_new_line = doc.text.count("\n", 0, edit.start) + (2 if edit.text.startswith(("\n", "\r\n")) else 1)
    line = first_new_line + len(keys) - 1
    change = LocationChange(doc.label, path, line, form, None, str(image), True)
    return _Plan((edit,), change, _Intent(steps, form))


def _holds(node: ScalarNode, value: str) -> bool:
    """True when `node` already reads as the string `value` for Helm and for ruamel.yaml."""
    if node.value != value or node.tag != STR_TAG:
        return False
    return node.style in ("'", '"') or _reads_as_string(value)


def _readers(doc: _Document, chain: Sequence[Node]) -> tuple[int, ...]:
    """Lines of aliases that read the last node of `chain`, directly or through a collection around it."""
    ids = {id(node) for node in chain}
    return tuple(sorted(use.line for use in doc.alias_uses.values() if id(use.node) in ids))


def _reads_as_string(text: str) -> bool:
    """True when `text`, written plain, is a string to YAML 1.1 (Helm) and 1.2 (ruamel.yaml) alike."""
    return bool(text) and all(
        str(resolver.resolve(ScalarNode, text, (True, False))) == STR_TAG for resolver in _RESOLVERS
    )


def _render(value: str, style: str | None = None, *, in_flow: bool = False) -> str:
    """`value` as YAML text, in the quoting style it had; plain only where it still reads as a string.

    Inside {...} or [...], YAML 1.1 readers of the PyYAML and libyaml family
    reject a ':' in a plain scalar (a registry port), so there it is quoted.
    Image names and tags never hold quotes or backslashes: no escaping needed.
    """
    if style == "'":
        return f"'{value}'"
    if style == '"' or not _reads_as_string(value) or (in_flow and ":" in value):
        return f'"{value}"'
    return value


def _in_flow(chain: Sequence[Node]) -> bool:
    """True when the last node of `chain` sits inside a flow collection."""
    return len(chain) > 1 and isinstance(chain[-2], CollectionNode) and bool(chain[-2].flow_style)


def _replace(doc: _Document, node: ScalarNode, value: str, *, in_flow: bool) -> _Edit:
    """Replace the scalar's own text; an anchor or tag before it stays."""
    end = node.end_mark.index
    return _Edit(doc.scalar_starts[end], end, _render(value, node.style, in_flow=in_flow))


def _insert_after_colon(doc: _Document, key: Node, value: str, *, in_flow: bool) -> _Edit:
    """Fill an empty value (`tag:`): the new text goes right after the colon, before any comment."""
    colon = doc.text.index(":", key.end_mark.index) + 1
    return _Edit(colon, colon, f" {_render(value, in_flow=in_flow)}")


def _insert_lines(
    doc: _Document,
    path: str,
    lines: Sequence[tuple[int, str]],
    *,
    parent: Node | None,
    parent_key: Node | None = None,
    holder: MappingNode | None = None,
) -> _Edit:
    """New block lines (depth, text) inside `parent`, indented the way the file indents."""
    text = doc.text
    step = _indent_step(doc)
    if isinstance(parent, MappingNode):
        _refuse_flow_mapping(doc, parent, parent, path)
        indent = parent.value[0][0].start_mark.column
        at = _after_line(text, _content_end(doc, parent))
    elif parent_key is not None:
        _refuse_flow_mapping(doc, holder, parent_key, path)
        indent = parent_key.start_mark.column + step
        at = _after_line(text, parent_key.end_mark.index)
    elif parent is None or parent is doc.root:
        indent, at = 0, len(text)
    else:
        raise ToolingError(
            f"{_at(doc, parent)}: {path}: --create does not add keys inside a list item; add them by hand."
        )
    eol = "\r\n" if "\r\n" in text else "\n"
    block = [" " * (indent + depth * step) + line for depth, line in lines]
    if at == len(text) and text and not text.endswith("\n"):
        return _Edit(at, at, eol + eol.join(block))
    return _Edit(at, at, "".join(line + eol for line in block))


def _refuse_flow_mapping(doc: _Document, mapping: MappingNode | None, at: Node, path: str) -> None:
    """--create writes block lines, which cannot go inside a {...} mapping."""
    if mapping is not None and mapping.flow_style:
        raise ToolingError(
            f"{_at(doc, at)}: {path}: --create adds keys to block mappings only, and this one is "
            "written in flow style ({...}); add the keys by hand."
        )


def _after_line(text: str, end: int) -> int:
    """The start of the line after the one holding text[end - 1]."""
    if end > 0 and text[end - 1] == "\n":
        return end
    newline = text.find("\n", end)
    return len(text) if newline == -1 else newline + 1


def _content_end(doc: _Document, node: Node) -> int:
    """Where the last text that belongs to `node` ends (not where the next key begins)."""
    if not isinstance(node, CollectionNode) or node.flow_style:
        return int(node.end_mark.index)
    if isinstance(node, MappingNode):
        key, last = node.value[-1]
        use = doc.alias_at(node, key)
        if use is None and _is_empty(last):
            return int(key.end_mark.index)
    else:
        last = node.value[-1]
        use = doc.alias_at(node, len(node.value) - 1)
    return use.end if use is not None else _content_end(doc, last)


def _indent_step(doc: _Document) -> int:
    """The file's usual indentation of a mapping under its key (2 when the file does not show one)."""
    steps: Counter[int] = Counter()
    for _, mapping in _mappings(doc):
        if mapping.flow_style:
            continue
        for key, value in mapping.value:
            if isinstance(value, MappingNode) and not value.flow_style and doc.alias_at(mapping, key) is None:
                step = value.value[0][0].start_mark.column - key.start_mark.column
                if step > 0:
                    steps[step] += 1
    return steps.most_common(1)[0][0] if steps else 2


# ---------------------------------------------------------------- verifying


def _require_string(doc: _Document, node: Node, path: str) -> None:
    """Refuse a value Helm would not read as the string it shows (e.g. an unquoted 2020.06)."""
    if not isinstance(node, ScalarNode) or _is_empty(node) or node.style in ("|", ">"):
        raise _wrong_kind(doc, node, path, "a string")
    if not _holds(node, node.value):
        raise ToolingError(
            f"{_at(doc, node)}: {path} is written unquoted as {node.value}, which YAML reads as a {_plain_kind(node)}, "
            "not that text; quote it first (bump and set-image write it quoted)."
        )


def _plain_kind(node: ScalarNode) -> str:
    """What a plain scalar is to the YAML version that does not read it as a string (int, float, bool, ...)."""
    tags = [str(node.tag)] + [str(resolver.resolve(ScalarNode, node.value, (True, False))) for resolver in _RESOLVERS]
    return next(tag for tag in tags if tag != STR_TAG).rsplit(":", 1)[-1]


class ScalarTree(NamedTuple):
    tag: str
    value: str
    anchor: str | None
    # Each tree type carries its kind, so that trees of different kinds never compare equal as plain tuples.
    kind: Literal["scalar"] = "scalar"


class AliasTree(NamedTuple):
    """An alias by its anchor's name, not expanded."""

    anchor: str
    kind: Literal["alias"] = "alias"


class MapTree(NamedTuple):
    anchor: str | None
    pairs: tuple[Pair, ...]
    kind: Literal["map"] = "map"


class SeqTree(NamedTuple):
    anchor: str | None
    items: tuple[Tree, ...]
    kind: Literal["seq"] = "seq"


class Pair(NamedTuple):
    key: Tree
    value: Tree


Tree = ScalarTree | AliasTree | MapTree | SeqTree | None


def _tree(doc: _Document, node: Node | None) -> Tree:
    """The document as small typed trees: scalars by tag and value, aliases by name (not expanded)."""
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        return ScalarTree(str(node.tag), node.value, node.anchor)
    if isinstance(node, MappingNode):
        pairs = tuple(Pair(_tree(doc, key), _child_tree(doc, node, key, value)) for key, value in node.value)
        return MapTree(node.anchor, pairs)
    return SeqTree(node.anchor, tuple(_child_tree(doc, node, index, item) for index, item in enumerate(node.value)))


def _child_tree(doc: _Document, parent: Node, site: Node | int, child: Node) -> Tree:
    use = doc.alias_at(parent, site)
    return AliasTree(use.anchor) if use is not None else _tree(doc, child)


def _anchor(tree: Tree) -> str | None:
    return None if tree is None or isinstance(tree, AliasTree) else tree.anchor


def _names(key: Tree, name: str) -> bool:
    return isinstance(key, ScalarTree) and key.value == name


def _key_is(key: Tree, name: str) -> bool:
    """Whether `key` is the mapping key `name` (a merge key `<<` never is)."""
    return _names(key, name) and isinstance(key, ScalarTree) and key.tag != MERGE_TAG


def _expect(tree: Tree, steps: Sequence[PathKey], form: str, image: ImageReference) -> Tree:
    """`tree` with the image written at `steps`, creating mappings that are missing."""
    if not steps:
        if form == SCALAR_FORM:
            return ScalarTree(STR_TAG, str(image), _anchor(tree))
        return _with_fields(tree, {"name": image.name, "tag": image.tag})
    step, rest = steps[0], steps[1:]
    if isinstance(step, int):
        assert isinstance(tree, SeqTree), "planning refuses a list index into anything but a list"
        items = list(tree.items)
        items[step] = _expect(items[step], rest, form, image)
        return tree._replace(items=tuple(items))
    if tree is None or isinstance(tree, ScalarTree):
        tree = MapTree(_anchor(tree), ())
    assert isinstance(tree, MapTree), "planning refuses a key into anything but a mapping"
    pairs = list(tree.pairs)
    for index, pair in enumerate(pairs):
        if _key_is(pair.key, step):
            pairs[index] = pair._replace(value=_expect(pair.value, rest, form, image))
            return tree._replace(pairs=tuple(pairs))
    pairs.append(Pair(ScalarTree(STR_TAG, step, None), _expect(None, rest, form, image)))
    return tree._replace(pairs=tuple(pairs))


def _with_fields(tree: Tree, fields: Mapping[str, str]) -> MapTree:
    mapping = tree if isinstance(tree, MapTree) else MapTree(None, ())
    pairs = list(mapping.pairs)
    for field, value in fields.items():
        index = next(
            (i for i, pair in enumerate(pairs) if isinstance(pair.key, ScalarTree) and pair.key.value == field), None
        )
        if index is None:
            pairs.append(Pair(ScalarTree(STR_TAG, field, None), ScalarTree(STR_TAG, value, None)))
        else:
            pairs[index] = pairs[index]._replace(value=ScalarTree(STR_TAG, value, _anchor(pairs[index].value)))
    return mapping._replace(pairs=tuple(pairs))


def _first_difference(expected: Tree, actual: Tree, where: str = "") -> str:
    if isinstance(expected, SeqTree) and isinstance(actual, SeqTree) and _same_shape(expected, actual):
        for index, (want, got) in enumerate(zip(expected.items, actual.items, strict=True)):
            if want != got:
                return _first_difference(want, got, f"{where}[{index}]")
    if isinstance(expected, MapTree) and isinstance(actual, MapTree) and _same_shape(expected, actual):
        for want_pair, got_pair in zip(expected.pairs, actual.pairs, strict=True):
            if want_pair == got_pair:
                continue
            key = want_pair.key.value if isinstance(want_pair.key, ScalarTree) else str(want_pair.key)
            inner = f"{where}.{key}" if where else key
            return _first_difference(want_pair.value, got_pair.value, inner) if want_pair.key == got_pair.key else inner
    return where or "the top level"


def _same_shape(expected: MapTree | SeqTree, actual: MapTree | SeqTree) -> bool:
    return expected.anchor == actual.anchor and len(_children(expected)) == len(_children(actual))


def _children(tree: MapTree | SeqTree) -> tuple[Pair, ...] | tuple[Tree, ...]:
    return tree.pairs if isinstance(tree, MapTree) else tree.items
