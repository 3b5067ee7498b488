"""The contract tests of harness.testing.contract over every registered task and method."""

from harness.testing.contract import (  # noqa: F401 - collected by pytest
    test_a_record_validates_and_a_skip_has_a_reason,
    test_lambda_zero_gives_the_base_numbers,
    test_the_same_seed_gives_the_same_numbers,
)
