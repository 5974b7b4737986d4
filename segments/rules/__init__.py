"""Rule engine: JSON rule trees → validated → compiled to one ``Q`` on Contact.

Public entry points: :func:`rule_validate`, :func:`rule_compile`, :func:`rule_describe`,
:func:`rule_evaluate_reference`, :func:`rule_dependencies`, :func:`rule_explain` and the
condition-type registry :func:`register_condition` (see ``segments.rules.registry``).
"""

from segments.rules.registry import (
    CompileContext,
    Dependencies,
    ReferenceContact,
    RuleError,
    ValidationContext,
    condition_type,
    condition_types,
    register_condition,
    unregister_condition,
)
from segments.rules.tree import (
    ExplainLine,
    rule_compile,
    rule_dependencies,
    rule_describe,
    rule_evaluate_reference,
    rule_explain,
    rule_leaves,
    rule_matches_everyone,
    rule_validate,
)

__all__ = [
    "CompileContext",
    "Dependencies",
    "ExplainLine",
    "ReferenceContact",
    "RuleError",
    "ValidationContext",
    "condition_type",
    "condition_types",
    "register_condition",
    "rule_compile",
    "rule_dependencies",
    "rule_describe",
    "rule_evaluate_reference",
    "rule_explain",
    "rule_leaves",
    "rule_matches_everyone",
    "rule_validate",
    "unregister_condition",
]
