"""YAML that remembers where things are: mappings and lists that know the line of
themselves, their keys, values and items, so every inventory error can say ``file:line``.
Merge keys (``<<: *anchor``) are applied; duplicate keys and recursive aliases are errors.
PyYAML is imported when a document is read (a run without an inventory file never pays
for it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import yaml

Fail = Callable[[Optional[int], str, str], Exception]  # (line, field, message) -> the error


class LineMap(dict):  # a YAML mapping that remembers the line of itself, its keys and values
    def __init__(self, line: int) -> None:
        super().__init__()
        self.line, self.key_lines, self.value_lines = line, {}, {}


class LineList(list):  # a YAML sequence that remembers the line of itself and of each item
    def __init__(self, line: int) -> None:
        super().__init__()
        self.line, self.item_lines = line, []


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {LineMap: "a mapping", LineList: "a list"}.get(type(value), repr(value))


def load_yaml(text: str, fail: Fail) -> Any:
    """``text``'s YAML document as ``LineMap``/``LineList``/scalars; errors via ``fail``."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        return None if node is None else _build(node, loader, set(), fail)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        what = "; ".join(str(p) for p in (e.context, e.problem) if p)
        raise fail(line, "", f"invalid YAML: {what}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        msg = f"invalid YAML: character U+{e.character:04X} is not allowed; remove it"
        raise fail(line, "", msg) from None
    except yaml.YAMLError as e:
        raise fail(None, "", f"invalid YAML: {' '.join(str(e).split())}") from None


def _build(node: yaml.Node, loader: yaml.SafeLoader, active: set[int], fail: Fail) -> Any:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)
    if id(node) in active:
        raise fail(line, "", "recursive YAML alias; write the value out instead")
    active.add(id(node))
    out: LineMap | LineList
    if isinstance(node, yaml.SequenceNode):
        out = LineList(line)
        for item in node.value:
            out.append(_build(item, loader, active, fail))
            out.item_lines.append(item.start_mark.line + 1)
    else:
        own = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
        loader.flatten_mapping(node)  # apply YAML merge keys (<<: *anchor) first
        out, merged, seen = LineMap(line), len(node.value) - own, set()
        for n, (knode, vnode) in enumerate(node.value):
            kline = knode.start_mark.line + 1
            if not isinstance(knode, yaml.ScalarNode):
                raise fail(kline, "", "mapping keys must be plain names")
            key = loader.construct_object(knode, deep=True)
            if n >= merged:  # written here, not merged in: must be unique
                if key in seen:
                    raise fail(kline, "", f"duplicate key {key!r}; keep only one")
                seen.add(key)
            out[key] = _build(vnode, loader, active, fail)
            out.key_lines[key] = kline
            out.value_lines[key] = vnode.start_mark.line + 1
    active.discard(id(node))
    return out
