"""The `tag` plugin (Python, componentize-py): adds "tag" (from the TAG environment
variable the policy grants) to every record, splits a record whose "items" is a list
into one record per item, and, for a record with "loop": true, never returns: the host's
deadline stops it."""
import json
import os

from wit_world import exports
from wit_world.imports import host
from componentize_py_types import Err


class Transformer(exports.Transformer):
    def transform(self, record: str) -> list[str]:
        try:
            value = json.loads(record)
        except ValueError as e:
            raise Err(f"not JSON: {e}")
        if value.get("loop"):
            while True:
                pass
        value["tag"] = os.environ.get("TAG", "untagged")
        items = value.pop("items", None)
        if isinstance(items, list):
            host.log(f"split into {len(items)}")
            return [json.dumps({**value, "item": item}, separators=(",", ":")) for item in items]
        return [json.dumps(value, separators=(",", ":"))]
