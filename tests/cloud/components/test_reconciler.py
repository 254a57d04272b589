"""Ipv6TargetReconciler, built alone: a function told which groups to keep clean."""

from stun_infra.cloud.components.reconciler import Ipv6TargetReconciler, ReconcilerArgs
from tests.cloud.components.conftest import ACCOUNT, REGION, TAGS, build_alone, component

GROUP = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/t/0123456789abcdef"


def test_the_reconciler_alone_is_given_the_target_groups():
    run = build_alone(lambda: Ipv6TargetReconciler("alone", ReconcilerArgs(
        group_name="g", target_group_arns=[GROUP], log_group_name="/stun-infra/alone/ipv6-targets",
        log_retention_days=30, tags=TAGS)))
    component(run, "stun-infra:endpoint:Ipv6TargetReconciler")
    function = run.one("aws:lambda/function:Function")
    assert GROUP in str(function.inputs["environment"])
