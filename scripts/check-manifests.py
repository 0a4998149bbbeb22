#!/usr/bin/env python3
"""Checks every Kubernetes manifest in deploy/ the way the cluster reads it.

- YAML 1.1 (PyYAML, the family of kubectl's go-yaml v2 reader): an unquoted
  `sha256: 0000...` is the integer 0 there, not a string; serde_yaml (YAML
  1.2) would read a string and hide it.
- Every WasmPlugin and EnvoyFilter against its kind's CRD schema of each
  Istio release it claims (`by-release/<kind>-<release>.schema.json`),
  made strict as `kubectl apply --validate=strict` is (an unknown field is
  an error, except under x-kubernetes-preserve-unknown-fields such as
  pluginConfig or an EnvoyFilter's patch.value). A manifest claims its
  releases with a line `# Minimum Istio: 1.20`: it must be valid for every
  release schema of its kind in deploy/istio/crd/by-release/ from that one
  on, and invalid for the last release before it when one is stored (so
  the stated minimum is the real one; a minimum at the oldest stored
  release has nothing below it to check).
- The CEL rules of the CRDs that apply (not evaluated by a JSON schema
  validator): for a WasmPlugin, selector/targetRef/targetRefs exclusive
  and a url scheme Istio knows; for an EnvoyFilter, workloadSelector and
  targetRefs exclusive and no wildcard in a selector label.

Usage: check-manifests.py [FILE...]      (default: every manifest in deploy/)
       check-manifests.py --json FILE    (print FILE as read, as JSON)
Exit 1 with one line per problem.
"""
import copy
import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BY_RELEASE = DEPLOY / "istio" / "crd" / "by-release"
MINIMUM = re.compile(r"^# Minimum Istio: (\d+)\.(\d+)\b", re.M)


def strict(schema):
    """The schema with additionalProperties: false on every object that
    lists its properties and does not preserve unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def releases(kind):
    """(major, minor) -> strict schema of `kind`, ascending."""
    found = {}
    prefix = f"{kind.lower()}-"
    for path in BY_RELEASE.glob(f"{prefix}*.schema.json"):
        major, minor, _ = path.name[len(prefix) : -len(".schema.json")].split(".")
        found[(int(major), int(minor))] = strict(json.loads(path.read_text()))
    return dict(sorted(found.items()))


def errors_for(spec, schema):
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"spec.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}".replace("spec.spec", "spec")
        for e in validator.iter_errors({"spec": spec})
    ]


def shown(path):
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def wasmplugin_cel(spec):
    problems = []
    if sum(1 for k in ("selector", "targetRef", "targetRefs") if k in spec) > 1:
        problems.append("spec: selector, targetRef and targetRefs are exclusive")
    url = str(spec.get("url", ""))
    if not url.startswith(("oci://", "http://", "https://", "file://")) and "://" in url:
        problems.append(f"spec.url: scheme of {url} is not oci, http(s) or file")
    return problems


def envoyfilter_cel(spec):
    problems = []
    if "workloadSelector" in spec and "targetRefs" in spec:
        problems.append("spec: only one of targetRefs or workloadSelector can be set")
    labels = (spec.get("workloadSelector") or {}).get("labels") or {}
    if any("*" in str(v) for v in labels.values()):
        problems.append("spec.workloadSelector.labels: wildcard is not supported in selector")
    return problems


# kind -> (apiVersion, CEL rules); schemas from by-release/<kind>-<release>.
KINDS = {
    "WasmPlugin": ("extensions.istio.io/v1alpha1", wasmplugin_cel),
    "EnvoyFilter": ("networking.istio.io/v1alpha3", envoyfilter_cel),
}


def check(path, schemas):
    """`schemas`: kind -> releases(kind)."""
    text = path.read_text()
    problems = []
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    resources = [d for d in documents if isinstance(d, dict) and d.get("kind") in KINDS]
    if not resources:
        return problems
    minimum = MINIMUM.search(text)
    if not minimum:
        return [f"{shown(path)}: no `# Minimum Istio: 1.NN` line: which releases does it claim?"]
    floor = (int(minimum.group(1)), int(minimum.group(2)))
    for doc in resources:
        kind = doc["kind"]
        api_version, cel = KINDS[kind]
        claimed = [r for r in schemas[kind] if r >= floor]
        below = [r for r in schemas[kind] if r < floor]
        name = doc.get("metadata", {}).get("name", "?")
        where = f"{shown(path)} ({name})"
        if not claimed:
            problems.append(f"{where}: no {kind} schema for Istio {floor[0]}.{floor[1]} or later")
            continue
        if doc.get("apiVersion") != api_version:
            problems.append(f"{where}: apiVersion {doc.get('apiVersion')!r}")
        if not isinstance(name, str) or name == "?":
            problems.append(f"{where}: metadata.name missing")
        spec = doc.get("spec", {})
        for release in claimed:
            for e in errors_for(spec, schemas[kind][release]):
                problems.append(f"{where}: Istio {release[0]}.{release[1]}: {e}")
        if below and not errors_for(spec, schemas[kind][below[-1]]):
            last = below[-1]
            problems.append(
                f"{where}: also valid for Istio {last[0]}.{last[1]}: the stated minimum "
                f"{floor[0]}.{floor[1]} is too high"
            )
        problems.extend(f"{where}: {p}" for p in cel(spec))
    return problems


def main(argv):
    if len(argv) == 3 and argv[1] == "--json":
        docs = [d for d in yaml.safe_load_all(pathlib.Path(argv[2]).read_text()) if d is not None]
        print(json.dumps(docs[0] if len(docs) == 1 else docs))
        return 0
    schemas = {kind: releases(kind) for kind in KINDS}
    manifests = [pathlib.Path(a).resolve() for a in argv[1:]] or sorted(
        p
        for p in DEPLOY.rglob("*.y*ml")
        if p.suffix in (".yaml", ".yml") and "crd" not in p.relative_to(DEPLOY).parts
    )
    problems = []
    for path in manifests:
        try:
            problems.extend(check(path, schemas))
        except yaml.YAMLError as e:
            problems.append(f"{shown(path)}: {e}")
    for p in problems:
        print(p)
    if problems:
        return 1
    shown = "; ".join(
        f"{kind} " + ", ".join(f"{a}.{b}" for a, b in releases) for kind, releases in schemas.items()
    )
    print(f"{len(manifests)} manifests valid as Kubernetes reads them (YAML 1.1; schemas {shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
