"""The CRD and the parser must agree: same defaults, same choices, and every documented example
passes both. (Validation by a real API server, CEL included, is the cluster tests' job.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kitex_etcd_operator.kube.checks import ADDRESS_SOURCES, IP_FAMILIES
from kitex_etcd_operator.kube.fields import FIELDS, Field
from kitex_etcd_operator.kube.spec import parse_kitexservice
from kitex_etcd_operator.labels import OPERATORS
from kitex_etcd_operator.model import Framework
from kitex_etcd_operator.retry import RetryConfig

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "kitexservices.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]


def _examples() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "reference.md").read_text()
    docs = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "KitexService"]


EXAMPLES = _examples()


# --- a small structural-schema checker: types, bounds, patterns, defaults ----------------

def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    errors: list[str] = []
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    if schema.get("x-kubernetes-int-or-string"):
        kinds: tuple[type, ...] = (int, str)
    else:
        kinds = {"object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
                 "boolean": (bool,), None: (object,)}[schema.get("type")]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        return [f"{path}: {value!r} is not {schema.get('type')}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if isinstance(value, int) and not isinstance(value, bool) and (
            value < schema.get("minimum", value) or value > schema.get("maximum", value)):
        errors.append(f"{path}: {value} out of range")
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append(f"{path}: bad length")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            errors.append(f"{path}: bad item count")
        for index, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{path}[{index}]")
    if isinstance(value, dict) and schema.get("type") == "object":
        if len(value) > schema.get("maxProperties", len(value)):
            errors.append(f"{path}: too many properties")
        errors += [f"{path}.{r}: required" for r in schema.get("required", []) if r not in value]
        props = schema.get("properties")
        for key, item in value.items():
            if props is not None and key in props:
                errors += validate(item, props[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(item, schema["additionalProperties"], f"{path}[{key}]")
            elif props is not None and key not in ("apiVersion", "kind", "metadata"):
                errors.append(f"{path}.{key}: unknown field (would be pruned)")
    return errors


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """What the API server stores: defaults filled in, depth first."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for key, sub in schema["properties"].items():
            if key not in out and "default" in sub:
                out[key] = sub["default"]
            if key in out:
                out[key] = apply_defaults(out[key], sub)
        return out
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


# --- tests ---------------------------------------------------------------------------------

def test_identity() -> None:
    assert CRD["metadata"]["name"] == "kitexservices.kitex.cloudwego.io"
    assert CRD["spec"]["group"] == "kitex.cloudwego.io"
    assert CRD["spec"]["scope"] == "Namespaced"
    names = CRD["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "KitexService", "kitexservices", ["kxs"])
    assert VERSION["name"] == "v1alpha1" and VERSION["served"] and VERSION["storage"]
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert [c["name"] for c in VERSION["additionalPrinterColumns"]
            if not c.get("priority")] == ["Service", "Ready", "Condition", "Age"]
    for column in columns.values():
        path = column["jsonPath"].split("[")[0].lstrip(".").split(".")
        node = SCHEMA
        for part in path[:-1] if path[0] == "metadata" else path:
            node = node["properties"][part]
    assert columns["Ready"]["type"] == "integer" and columns["Age"]["type"] == "date"


def test_schema_defaults_agree_with_parser() -> None:
    props = SPEC["properties"]
    retry = props["retry"]["properties"]
    default = RetryConfig()
    assert props["framework"]["default"] == Framework.KITEX.value
    assert props["network"]["default"] == "tcp"
    assert props["weight"]["default"] == 10
    assert props["publishNotReadyAddresses"]["default"] is False
    assert retry["maxAttemptTimes"]["default"] == default.max_attempt_times
    body = {"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                                 "port": 1, "retry": {
        "observeDelay": retry["observeDelay"]["default"],
        "retryDelay": retry["retryDelay"]["default"]}}}
    assert parse_kitexservice(body).retry == default


def test_schema_choices_agree_with_parser() -> None:
    props = SPEC["properties"]
    assert props["framework"]["enum"] == [f.value for f in Framework]
    assert props["address"]["properties"]["source"]["enum"] == list(ADDRESS_SOURCES)
    assert props["address"]["properties"]["ipFamily"]["enum"] == list(IP_FAMILIES)
    expressions = props["selector"]["properties"]["matchExpressions"]["items"]
    assert expressions["properties"]["operator"]["enum"] == list(OPERATORS)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e["metadata"]["name"])
def test_documented_examples_pass_schema_and_parser(example: dict[str, Any]) -> None:
    assert validate(example, SCHEMA) == []
    stored = apply_defaults(example, SCHEMA)
    assert validate(stored, SCHEMA) == []
    # The parser gives the same answer with or without the schema's defaults.
    assert parse_kitexservice(stored) == parse_kitexservice(example)


@pytest.mark.parametrize("spec", [
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "weight": -1},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "framework": "grpc"},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "leaseTTL": 1},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "retry": {"observeDelay": "30 s"}},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "network": "TCP"},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "serviceName": " echo"},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "etcd": {"endpoints": []}},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "address": {"source": "node"}},
    # Neither selector nor serviceRef: CEL refuses it (tests/e2e/test_services.py).
    # Gaps the bad-input property found (tests/reliability/test_reliability_bad_input.py):
    # the API server admitted these and the operator then refused them.
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "tagsFromLabels": ["Bad Key"]},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1,
     "etcd": {"authSecretRef": {"name": "Bad_Name"}}},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1,
     "etcd": {"tlsSecretRef": {"name": "a b"}}},
    {"selector": {"matchLabels": {"a": "b"}}, "port": 1, "etcd": {"prefix": "a\x00b"}},
    {"selector": {"matchExpressions": [{"key": "a b", "operator": "Exists"}]}, "port": 1},
    # Unbounded, it let through numbers of thousands of digits (int() refuses past 4,300).
    {"serviceRef": {"name": "api", "port": "9" * 5000}},
    {"serviceRef": {"name": "api", "port": "Not_A_Port"}},
])
def test_schema_refuses_what_the_parser_refuses(spec: dict[str, Any]) -> None:
    from kitex_etcd_operator.kube.errors import SpecError

    body = {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
            "metadata": {"name": "x"}, "spec": spec}
    assert validate(body, SCHEMA) != []
    with pytest.raises(SpecError):
        parse_kitexservice(body)


@pytest.mark.parametrize("port", [80, "80", "kitex", "grpc-web"])
def test_schema_admits_service_ref_ports(port: int | str) -> None:
    body = {"apiVersion": "kitex.cloudwego.io/v1alpha1", "kind": "KitexService",
            "metadata": {"name": "x"}, "spec": {"serviceRef": {"name": "api", "port": port}}}
    assert validate(body, SCHEMA) == []
    parse_kitexservice(body)


def test_status_written_by_the_operator_fits_the_schema() -> None:
    status = {
        "observedGeneration": 3, "serviceName": "echo", "prefix": "kitex/registry-etcd",
        "readyInstances": 2, "registeredAddresses": ["10.0.0.7:8888", "[fd00::7]:8888"],
        "lastSyncTime": "2026-11-24T10:00:00Z", "lastError": None,
        "conditions": [{"type": t, "status": "True", "reason": "Synced", "message": "ok",
                        "lastTransitionTime": "2026-11-24T10:00:00Z", "observedGeneration": 3}
                       for t in ("Ready", "Degraded", "Conflict", "InvalidPods")]}
    assert validate(status, SCHEMA["properties"]["status"], "status") == []


def _rules(schema: dict[str, Any]) -> list[str]:
    found = [r["rule"] for r in schema.get("x-kubernetes-validations", [])]
    for sub in schema.get("properties", {}).values():
        found += _rules(sub)
    if "items" in schema:
        found += _rules(schema["items"])
    return found


def test_cel_covers_what_the_schema_cannot_say() -> None:
    """Rules only an API server evaluates: at least make sure none went missing."""
    rules = " ".join(_rules(SPEC))
    for needle in ("contains('/')", "has(self.address.port)", "size(self.matchLabels) > 0",
                   "self.operator in ['In', 'NotIn']", "has(self.host) && has(self.source)",
                   "startsWith('/')", "self <= 65535",
                   # Unicode blanks at a service name's ends, in endpoints; label keys in
                   # matchLabels; zero durations; a host neither IP nor DNS name.
                   r"\p{Z}]|[", r"\x7f-\x{9f}\p{Z}", "self.all(k, k.matches(",
                   "duration(self) > duration('0s')", "isIP(self)"):
        assert needle in rules, needle


# --- the field table: one source of types, defaults and limits for every parser --------

_TYPE_OF_KIND = {"int": "integer", "bool": "boolean", "choice": "string", "framework": "string",
                 "network": "string", "host": "string", "tags": "object",
                 "label-keys": "array"}


@pytest.mark.parametrize("setting", FIELDS, ids=lambda f: f.path)
def test_the_crd_schema_agrees_with_the_field_table(setting: Field) -> None:
    """Each setting of kube/fields.py has the CRD type, bounds, choices and default the
    parsers apply: the schema and the two parsers cannot drift apart unnoticed."""
    schema: dict[str, Any] = SPEC
    for part in setting.path.split("."):
        schema = schema["properties"][part]
    assert schema["type"] == _TYPE_OF_KIND[setting.kind]
    if setting.bounds is not None:
        assert (schema.get("minimum"), schema.get("maximum")) == setting.bounds
    if setting.choices:
        assert tuple(schema["enum"]) == setting.choices
    if "default" in schema:
        assert schema["default"] == setting.default
    elif "." not in setting.path and setting.default not in (None, {}, []):
        # (Inside spec.address no default can be in the schema: it would set
        # address.source next to an address.host, which excludes it.)
        pytest.fail(f"the parsers default {setting.path} to {setting.default!r}, the CRD "
                    "does not: kubectl get would show no value where one applies")
    if setting.kind == "network":
        assert re.fullmatch(schema["pattern"], "tcp") and not re.fullmatch(schema["pattern"],
                                                                           "TCP")
