"""ScaleInDrain, LaunchHook and DrainDocument, each built alone."""

from stun_infra.cloud.components.drain import (TERMINATING, DrainDocument, DrainDocumentArgs, LaunchHook, LaunchHookArgs,
                                                ScaleInDrain, ScaleInDrainArgs)
from stun_infra.cloud.components.fleet import InitialHook
from stun_infra.instance import launch

from tests.cloud.components.conftest import ACCOUNT, REGION, TAGS, build_alone, component

GROUP_ARN = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:1:autoScalingGroupName/g"


def test_the_scale_in_drain_alone_hooks_the_group_with_the_heartbeat_given():
    run = build_alone(lambda: ScaleInDrain("alone", ScaleInDrainArgs(
        group_name="g", group_arn=GROUP_ARN, role_id="r",
        hook=InitialHook("stun-infra-alone-drain", TERMINATING, 120, "CONTINUE"))))
    component(run, "stun-infra:fleet:ScaleInDrain")
    hook = run.one("aws:autoscaling/lifecycleHook:LifecycleHook")
    assert (hook.inputs["autoscalingGroupName"], hook.inputs["lifecycleTransition"], hook.inputs["heartbeatTimeout"],
            hook.inputs["defaultResult"]) == ("g", TERMINATING, 120, "CONTINUE")


def test_the_drain_document_alone_is_named_as_asked():
    run = build_alone(lambda: DrainDocument("alone", DrainDocumentArgs(
        document_name="stun-infra-alone-drain", drain_seconds=60, tags=TAGS)))
    component(run, "stun-infra:fleet:DrainDocument")
    assert run.one("aws:ssm/document:Document").inputs["name"] == "stun-infra-alone-drain"


def test_the_launch_hook_alone_holds_new_instances_of_the_group_and_abandons_them_at_its_timeout():
    run = build_alone(lambda: LaunchHook("alone", LaunchHookArgs(
        group_name="g", hook=InitialHook("stun-infra-alone-launch", launch.LAUNCHING, 900, "ABANDON"))))
    component(run, "stun-infra:fleet:LaunchHook")
    hook = run.one("aws:autoscaling/lifecycleHook:LifecycleHook")
    assert (hook.inputs["autoscalingGroupName"], hook.inputs["lifecycleTransition"], hook.inputs["heartbeatTimeout"],
            hook.inputs["defaultResult"]) == ("g", launch.LAUNCHING, 900, "ABANDON")
