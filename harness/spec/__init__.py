"""Spec loading and validation."""

from harness.spec.lambdas import resolve_lambda
from harness.spec.loader import SpecError, load_spec, validate_spec
from harness.spec.models import spec_model

__all__ = ["SpecError", "load_spec", "resolve_lambda", "spec_model", "validate_spec"]
