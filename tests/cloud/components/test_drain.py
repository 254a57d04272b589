"""ScaleInDrain and DrainDocument, each built alone."""

from stun_infra.cloud.components.drain import DrainDocument, DrainDocumentArgs, ScaleInDrain, ScaleInDrainArgs
from tests.cloud.components.conftest import ACCOUNT, REGION, TAGS, build_alone, component

GROUP_ARN = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:1:autoScalingGroupName/g"


def test_the_scale_in_drain_alone_hooks_the_group_with_the_heartbeat_given():
    run = build_alone(lambda: ScaleInDrain("alone", ScaleInDrainArgs(
        group_name="g", group_arn=GROUP_ARN, role_id="r", hook_name="stun-infra-alone-drain", heartbeat_seconds=120)))
    component(run, "stun-infra:fleet:ScaleInDrain")
    hook = run.one("aws:autoscaling/lifecycleHook:LifecycleHook")
    assert (hook.inputs["autoscalingGroupName"], hook.inputs["heartbeatTimeout"]) == ("g", 120)


def test_the_drain_document_alone_is_named_as_asked():
    run = build_alone(lambda: DrainDocument("alone", DrainDocumentArgs(
        document_name="stun-infra-alone-drain", drain_seconds=60, tags=TAGS)))
    component(run, "stun-infra:fleet:DrainDocument")
    assert run.one("aws:ssm/document:Document").inputs["name"] == "stun-infra-alone-drain"
