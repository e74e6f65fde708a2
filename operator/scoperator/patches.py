"""Strategic-merge and JSON patches of rendered objects (the escape hatches), pure functions.

Strategic merge follows what `kubectl patch --type strategic` does for the fields that occur in a
pod template or a Service, without the OpenAPI tables kubectl reads:

- maps merge recursively; `null` removes a key;
- lists named in MERGE_KEYS merge item by item on their key (containers, volumes, env, ... by
  name; volumeMounts by mountPath; ports by containerPort in a container, by port in a Service);
  an item with `$patch: delete` removes the matching item; unmatched items are appended;
- any other list (args, command, tolerations, ...) is replaced;
- `$patch: replace` in a map replaces that map instead of merging into it; `$patch: delete` in a
  map removes that map from its parent.

JSON patch is RFC 6902 (add, remove, replace, move, copy, test). Both raise PatchError naming the
path that could not be patched; nothing here mutates its inputs.
"""

from __future__ import annotations

import copy
from typing import Any

DIRECTIVE = "$patch"
# List field name -> the key its items merge on (ports is decided by its items, see _merge_key).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
}


# Deeper than any Kubernetes object or server config; far enough below Python's recursion limit
# that the recursive merges and copy.deepcopy of a value this deep cannot raise RecursionError.
MAX_DEPTH = 64


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects/lists more than `limit` levels (checked without recursion,
    so a hostile resource cannot make the check itself overflow the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


class PatchError(ValueError):
    """A patch that cannot be applied; `path` is where (JSON pointer style)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "/"
        self.detail = message
        super().__init__(f"{self.path}: {message}")


def strategic_merge(base: Any, patch: Any, path: str = "") -> Any:
    """`base` with the strategic-merge `patch` applied (a new object)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get(DIRECTIVE) == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != DIRECTIVE}
    if DIRECTIVE in patch and patch[DIRECTIVE] not in ("replace", "delete", "merge"):
        raise PatchError(path, f"unknown directive $patch: {patch[DIRECTIVE]!r}")
    if _is_delete(patch):
        raise PatchError(path, "$patch: delete removes a map from its parent, not the whole object")
    if not isinstance(base, dict):
        base = {}
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if key == DIRECTIVE:
            continue
        sub = f"{path}/{key}"
        if value is None or _is_delete(value):  # kubectl: {field: {$patch: delete}} drops it
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            merge_key = _merge_key(key, result[key], value)
            if merge_key is None:
                result[key] = [_clean(v) for v in value if not _is_delete(v)]
            else:
                result[key] = _merge_list(result[key], value, merge_key, sub)
        elif isinstance(value, list):
            result[key] = [_clean(v) for v in value if not _is_delete(v)]
        elif isinstance(value, dict):
            result[key] = strategic_merge(result.get(key), value, sub)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _is_delete(item: Any) -> bool:
    return isinstance(item, dict) and item.get(DIRECTIVE) == "delete"


def _clean(value: Any) -> Any:
    """A patch value without directives (what lands in the object)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != DIRECTIVE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _merge_key(field: str, base: list[Any], patch: list[Any]) -> str | None:
    if field == "ports":
        items = [i for i in [*base, *patch] if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return MERGE_KEYS.get(field)


def _merge_list(base: list[Any], patch: list[Any], key: str, path: str) -> list[Any]:
    result = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(path, f"every item needs {key!r} to merge with the rendered list")
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if _is_delete(item):
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_clean(item))
        else:
            result[index] = strategic_merge(result[index], item, f"{path}/{index}")
    return result


# ------------------------------------------------------------------------------- JSON patch


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(pointer, "a JSON pointer starts with /")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError(pointer, "cannot patch the whole object")
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token, pointer)
    return node, tokens[-1]


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(pointer, f"no member {token!r}")
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, pointer)]
    raise PatchError(pointer, f"{token!r} is below a value that is neither object nor list")


def _index(node: list[Any], token: str, pointer: str, *, append: bool = False) -> int:
    if append and token == "-":
        return len(node)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(pointer, f"{token!r} is not a list index")
    index = int(token)
    if index > len(node) or (index == len(node) and not append):
        raise PatchError(pointer, f"index {index} is out of range (length {len(node)})")
    return index


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for token in _tokens(pointer):
        node = _child(node, token, pointer)
    return node


def _add(doc: Any, pointer: str, value: Any) -> None:
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, append=True), value)
    else:
        raise PatchError(pointer, "parent is neither object nor list")


def _remove(doc: Any, pointer: str) -> Any:
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(pointer, f"no member {token!r} to remove")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, pointer))
    raise PatchError(pointer, "parent is neither object nor list")


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON has it: Python's says True == 1 == 1.0, RFC 6902's test must not
    (a boolean is never a number; 1 and 1.0 are the same number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return a == b


def json_patch(doc: Any, operations: list[dict[str, Any]]) -> Any:
    """`doc` with RFC 6902 `operations` applied (a new object); raises PatchError."""
    result = copy.deepcopy(doc)
    for number, op in enumerate(operations):
        kind, pointer = op.get("op"), op.get("path", "")
        try:
            if kind == "add":
                _add(result, pointer, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                _remove(result, pointer)
            elif kind == "replace":
                _get(result, pointer)  # must exist
                _remove(result, pointer)
                _add(result, pointer, copy.deepcopy(op.get("value")))
            elif kind == "move":
                value = _remove(result, op["from"])
                _add(result, pointer, value)
            elif kind == "copy":
                _add(result, pointer, copy.deepcopy(_get(result, op["from"])))
            elif kind == "test":
                if not _json_equal(_get(result, pointer), op.get("value")):
                    raise PatchError(pointer, "test failed: the value differs")
            else:
                raise PatchError(pointer, f"unknown op {kind!r}")
        except PatchError as exc:
            raise PatchError(exc.path, f"operation {number} ({kind}): {exc.detail}") from None
    return result
