"""YAML loading with duplicate-key detection; every error is a ConfigError naming file and place."""
from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from pulse.schemas.config import ConfigError

from .checks import key_path

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(Exception):
    def __init__(self, path: tuple, first_line: int, line: int):
        self.path, self.first_line, self.line = path, first_line, line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping with the same key twice (PyYAML keeps the last).

    The check runs on the composed node tree, before construction, so it sees every
    mapping as written (merge keys `<<` are not duplicates: overriding a merged key is
    what they are for) and can report where the duplicate is, as a key path.
    """

    def construct_document(self, node):
        self._check_duplicates(node)
        return super().construct_document(node)

    def _key_value(self, key_node) -> Any:
        if isinstance(key_node, ScalarNode):
            try:
                value = self.construct_object(key_node)
                hash(value)
                return ("v", value)
            except Exception:                       # left for construction to report
                pass
        return ("n", key_node.tag, id(key_node))

    def _check_duplicates(self, root) -> None:
        seen_nodes: set[int] = set()
        stack: list[tuple[Any, tuple]] = [(root, ())]
        while stack:
            node, path = stack.pop()
            if id(node) in seen_nodes:              # an alias, or a recursive structure
                continue
            seen_nodes.add(id(node))
            if isinstance(node, MappingNode):
                first: dict[Any, int] = {}
                children = []
                for key_node, value_node in node.value:
                    label = key_node.value if isinstance(key_node, ScalarNode) else "?"
                    child_path = path + (label,)
                    if key_node.tag != _MERGE_TAG:
                        key = self._key_value(key_node)
                        line = key_node.start_mark.line + 1
                        if key in first:
                            raise _DuplicateKey(child_path, first[key], line)
                        first[key] = line
                    children.append((value_node, child_path))
                stack.extend(reversed(children))
            elif isinstance(node, SequenceNode):
                stack.extend(reversed([(item, path + (i,)) for i, item in enumerate(node.value)]))


def parse_yaml(data: bytes, source: str) -> Any:
    loader = None
    try:
        loader = _StrictLoader(data)            # the reader checks the encoding here
        return loader.get_single_data()
    except _DuplicateKey as e:
        raise ConfigError(source, key_path(e.path),
                          f"duplicate key (line {e.line}; first on line {e.first_line})") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = f"invalid YAML: {e.problem or e.context}"
        if e.context and e.problem:
            problem += f" ({e.context})"
        raise ConfigError(source, where, problem) from None
    except yaml.reader.ReaderError as e:           # bytes that are not UTF-8, or a control character
        if e.encoding != "unicode":                 # PyYAML's marker for a printable-character check
            problem = f"not valid {e.encoding} (byte 0x{e.character:02x}: {e.reason})"
        else:
            problem = f"invalid YAML: unacceptable character #x{e.character:04x} ({e.reason})"
        raise ConfigError(source, f"byte {e.position}", problem) from None
    except yaml.YAMLError as e:
        raise ConfigError(source, "(yaml)", f"invalid YAML: {' '.join(str(e).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()


