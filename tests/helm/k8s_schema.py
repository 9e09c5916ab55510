"""Validates Kubernetes objects against the API's own OpenAPI v3 documents
(api/openapi-spec/v3 of the k8s.io/kubernetes module, copied by
scripts/k8s_tools.sh), strictly: a field the schema does not know is an error,
as `kubectl apply --validate=strict` and kubeconform -strict make it.

Run with Debian's /usr/bin/python3 (python3-jsonschema).
"""
import copy
import json
from pathlib import Path

import jsonschema


def _strict(node):
    """additionalProperties: false wherever an object schema lists its
    properties and does not say it keeps unknown fields."""
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node and
                not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            _strict(v)
    elif isinstance(node, list):
        for v in node:
            _strict(v)


class Schemas:
    def __init__(self, openapi_dir):
        self.docs = []
        self.by_gvk = {}
        for path in sorted(Path(openapi_dir).glob("*_openapi.json")):
            doc = json.loads(path.read_text())
            schemas = doc.get("components", {}).get("schemas", {})
            index = None
            for name, schema in schemas.items():
                for gvk in schema.get("x-kubernetes-group-version-kind", []):
                    api_version = (f"{gvk['group']}/{gvk['version']}" if gvk["group"]
                                   else gvk["version"])
                    key = (api_version, gvk["kind"])
                    if key in self.by_gvk:
                        continue
                    if index is None:
                        _strict(schemas)
                        self.docs.append(doc)
                        index = len(self.docs) - 1
                    self.by_gvk[key] = (index, name)
        if not self.by_gvk:
            raise RuntimeError(f"no OpenAPI documents in {openapi_dir}")

    def knows(self, obj):
        return (obj.get("apiVersion"), obj.get("kind")) in self.by_gvk

    def errors(self, obj):
        """Messages of every schema violation of obj (empty: valid)."""
        index, name = self.by_gvk[(obj["apiVersion"], obj["kind"])]
        doc = self.docs[index]
        schema = {"$ref": f"#/components/schemas/{name}"}
        resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        validator = jsonschema.Draft7Validator(schema, resolver=resolver)
        out = []
        for e in validator.iter_errors(copy.deepcopy(obj)):
            where = "/".join(str(p) for p in e.absolute_path)
            out.append(f"{obj['kind']} {obj['metadata'].get('name')}: {where}: {e.message}")
        return out
