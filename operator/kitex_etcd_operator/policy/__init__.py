"""Tenancy: admin rules (``rules``) and ownership of names and ranges (``ownership``).

Pure decisions, no I/O: the controller feeds them what Kubernetes and etcd
say, and turns a refusal into a condition and an Event on the object
concerned.
"""

from __future__ import annotations

from .ownership import Claim, RangeClaim, decide_owner, nesting_winner, ranges_nest
from .rules import (
    ANNOTATIONS,
    DEFAULT_REGISTRY,
    KITEXSERVICE,
    SERVICE,
    Admitted,
    AutoRegister,
    PolicySet,
    Refused,
    Request,
    Rule,
    describe_group,
    namespace_group,
    policy_group,
    single_team_rule,
)

__all__ = [
    "ANNOTATIONS", "DEFAULT_REGISTRY", "KITEXSERVICE", "SERVICE", "Admitted",
    "AutoRegister", "Claim", "PolicySet",
    "RangeClaim", "Refused", "Request", "Rule", "decide_owner", "describe_group",
    "namespace_group", "nesting_winner", "policy_group", "ranges_nest", "single_team_rule",
]
