"""Fleet: the coturn instances, as a static set with Elastic IPs or as an auto scaling group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import pulumi
import pulumi_aws as aws

from stun_infra.cloud.components.base import child_opts, tagged
from stun_infra.common.project import PROJECT
from stun_infra.instance import metrics
from stun_infra.instance.userdata import packed

GROUP_METRICS = ["GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity",
                 "GroupInServiceInstances", "GroupTotalInstances"]


@dataclass(frozen=True)
class LaunchSpec:
    """What every instance is launched with, in either mode."""

    ami_id: str
    root_device_name: str
    instance_type: str
    key_name: pulumi.Input[str]
    instance_profile_name: pulumi.Input[str]
    instance_profile_arn: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    root_volume_size: int
    tags: dict[str, str]
    ipv6: bool = False  # one IPv6 address per instance (its own: no NAT, no Elastic IP)


def metadata_options() -> dict:
    """IMDSv2 only; hop limit 1 so nothing behind the instance can reach it."""
    return {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1,
            "instance_metadata_tags": "disabled"}


@dataclass(frozen=True)
class StaticFleetArgs:
    spec: LaunchSpec
    subnet_ids: Sequence[pulumi.Input[str]]
    count: int
    user_data_for: Callable[[pulumi.Output[str]], pulumi.Output[str]]  # Elastic IP -> that instance's user-data


class StaticFleet(pulumi.ComponentResource):
    """`count` instances round-robin over the subnets, each keeping its Elastic IP across stop/start."""

    def __init__(self, name: str, args: StaticFleetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:fleet:StaticFleet", name, None, opts)
        spec = args.spec
        self.instances: list[aws.ec2.Instance] = []
        self.eips: list[aws.ec2.Eip] = []
        for i in range(args.count):
            node = f"{name}-{i}"
            eip = aws.ec2.Eip(f"{node}-eip", domain="vpc", tags=tagged(spec.tags, f"{node}-eip"),
                              opts=child_opts(self))
            instance = aws.ec2.Instance(
                node,
                ami=spec.ami_id,
                instance_type=spec.instance_type,
                subnet_id=args.subnet_ids[i % len(args.subnet_ids)],
                vpc_security_group_ids=[spec.security_group_id],
                iam_instance_profile=spec.instance_profile_name,
                key_name=spec.key_name,
                user_data_base64=args.user_data_for(eip.public_ip).apply(packed),
                monitoring=True,
                # The provider replaces an instance when this changes (ForceNew): see the README's
                # changelog for turning IPv6 on in an existing static stack.
                **({"ipv6_address_count": 1} if spec.ipv6 else {}),
                metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**metadata_options()),
                root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                    volume_type="gp3", volume_size=spec.root_volume_size, encrypted=True,
                    delete_on_termination=True, tags=tagged(spec.tags, f"{node}-root")),
                tags=tagged(spec.tags, node),
                # Replacing every server at once would drop the whole fleet while the new ones
                # boot (each Elastic IP moves at once): a newer AMI or boot script is rolled
                # one instance at a time with `pulumi up --replace <urn>` (see README); the
                # boot_script_sha256 output shows when a roll is due.
                opts=child_opts(self, ignore_changes=["ami", "userDataBase64"]))
            aws.ec2.EipAssociation(f"{node}-eip", instance_id=instance.id, allocation_id=eip.allocation_id,
                                   opts=child_opts(self))
            self.instances.append(instance)
            self.eips.append(eip)
        self.instance_ids = [i.id for i in self.instances]
        self.public_ips = [e.public_ip for e in self.eips]
        self.ipv6_addresses = [i.ipv6_addresses.apply(lambda a: a[0]) for i in self.instances] if spec.ipv6 else []
        self.register_outputs({"instance_ids": self.instance_ids, "public_ips": self.public_ips,
                               "ipv6_addresses": self.ipv6_addresses})


@dataclass(frozen=True)
class WarmPool:
    """An Auto Scaling warm pool: instances installed ahead, kept in `state` until a scale-out
    starts one (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html)."""
    state: str
    min_size: int
    max_prepared_capacity: int  # -1: the group's maximum size
    reuse_on_scale_in: bool


@dataclass(frozen=True)
class InitialHook:
    """A lifecycle hook the group has from its creation: one added after it (a LifecycleHook
    resource) misses the instances launched meanwhile, and a warm pool stops such instances
    mid-install (AWS does not wait for user data)."""
    name: str
    transition: str
    heartbeat_seconds: int
    default_result: str


@dataclass(frozen=True)
class AutoscaleFleetArgs:
    spec: LaunchSpec
    subnet_ids: Sequence[pulumi.Input[str]]
    min_size: int
    desired_capacity: int
    max_size: int
    user_data: pulumi.Input[str]
    target_group_arns: Sequence[pulumi.Input[str]]
    health_check_grace_period: int
    min_healthy_percentage: int
    scaling: "CpuScaling | SessionsScaling"
    delete_timeout: str = ""  # e.g. "1500s": at least the target groups' deregistration delay
    warm_pool: WarmPool | None = None
    initial_hooks: Sequence[InitialHook] = ()


@dataclass(frozen=True)
class CpuScaling:
    """Track the group's average CPU at `target` percent."""
    target: int


@dataclass(frozen=True)
class SessionsScaling:
    """Track live TURN sessions per reporting instance at `target`: the fleet's LiveSessions
    (Sum per minute of every instance's report, `namespace`) divided by the instances that
    reported in that minute (the fleet's ReporterHeartbeat Sum: each run sends 1 with its
    sessions), by metric math (AWS: "Create a target tracking scaling policy using metric
    math", https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-target-tracking-metric-math.html).
    Dividing by the group's in-service count instead would read an instance whose reporter
    stopped as one with no call, and scale in instances that carry calls; a minute in which no
    instance reported has no datapoint, and target tracking then does nothing."""
    namespace: str
    target: int


SESSIONS_PER_INSTANCE = "sessions / reporting"


def sessions_per_instance(namespace: str) -> list:
    """The customized metric's queries: the two fleet series and the one expression it returns."""
    spec = aws.autoscaling

    def fleet_sum(id_: str, metric: str):
        return spec.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricArgs(
            id=id_, return_data=False,
            metric_stat=spec.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatArgs(
                metric=spec.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricArgs(
                    namespace=namespace, metric_name=metric),
                stat="Sum", period=60))

    return [
        fleet_sum("sessions", metrics.LIVE_SESSIONS),
        fleet_sum("reporting", metrics.HEARTBEAT),
        spec.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricArgs(
            id="per_instance", label="Live TURN sessions per reporting instance",
            expression=SESSIONS_PER_INSTANCE, return_data=True),
    ]


def scaling_policy(name: str, group_name: pulumi.Output[str], scaling: CpuScaling | SessionsScaling,
                   opts: pulumi.ResourceOptions) -> aws.autoscaling.Policy:
    """The group's one target-tracking policy, on CPU or on live sessions per instance."""
    if isinstance(scaling, CpuScaling):
        return aws.autoscaling.Policy(
            f"{name}-cpu-target", autoscaling_group_name=group_name, policy_type="TargetTrackingScaling",
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                predefined_metric_specification=aws.autoscaling.
                PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ASGAverageCPUUtilization"),
                target_value=float(scaling.target)),
            opts=opts)
    return aws.autoscaling.Policy(
        f"{name}-sessions-target", autoscaling_group_name=group_name, policy_type="TargetTrackingScaling",
        target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
            customized_metric_specification=aws.autoscaling.
            PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs(
                metrics=sessions_per_instance(scaling.namespace)),
            target_value=float(scaling.target)),
        opts=opts)


def warm_pool_args(pool: WarmPool | None) -> aws.autoscaling.GroupWarmPoolArgs | None:
    if pool is None:
        return None
    return aws.autoscaling.GroupWarmPoolArgs(
        pool_state=pool.state, min_size=pool.min_size, max_group_prepared_capacity=pool.max_prepared_capacity,
        instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(
            reuse_on_scale_in=pool.reuse_on_scale_in))


def initial_hook_args(hook: InitialHook) -> aws.autoscaling.GroupInitialLifecycleHookArgs:
    return aws.autoscaling.GroupInitialLifecycleHookArgs(
        name=hook.name, lifecycle_transition=hook.transition, heartbeat_timeout=hook.heartbeat_seconds,
        default_result=hook.default_result)


def launch_template(name: str, spec: LaunchSpec, user_data: pulumi.Input[str],
                    parent: pulumi.Resource) -> aws.ec2.LaunchTemplate:
    """What the group launches: every instance of the group is launched from its latest version."""
    return aws.ec2.LaunchTemplate(
        f"{name}-lt",
        image_id=spec.ami_id,
        instance_type=spec.instance_type,
        key_name=spec.key_name,
        user_data=pulumi.Output.from_input(user_data).apply(packed),
        iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=spec.instance_profile_arn),
        network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
            associate_public_ip_address="true", delete_on_termination="true",
            security_groups=[spec.security_group_id],
            **({"ipv6_address_count": 1} if spec.ipv6 else {}))],
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options()),
        block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=spec.root_device_name,
            ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                volume_type="gp3", volume_size=spec.root_volume_size, encrypted="true",
                delete_on_termination="true"))],
        monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
        update_default_version=True,
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tagged(spec.tags, name))
            for kind in ("instance", "volume")],
        tags=tagged(spec.tags, f"{name}-lt"),
        opts=child_opts(parent))


class AutoscaleFleet(pulumi.ComponentResource):
    """A launch template and an auto scaling group over every subnet, rolled by instance refresh."""

    def __init__(self, name: str, args: AutoscaleFleetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{PROJECT}:fleet:AutoscaleFleet", name, None, opts)
        spec = args.spec
        self.launch_template = launch_template(name, spec, args.user_data, self)
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            vpc_zone_identifiers=list(args.subnet_ids),
            min_size=args.min_size,
            max_size=args.max_size,
            desired_capacity=args.desired_capacity,
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=self.launch_template.id,
                # "$Latest" would never start an instance refresh: pin the number.
                version=self.launch_template.latest_version.apply(str)),
            target_group_arns=list(args.target_group_arns),
            health_check_type="ELB",
            health_check_grace_period=args.health_check_grace_period,
            default_instance_warmup=args.health_check_grace_period,
            enabled_metrics=GROUP_METRICS,
            metrics_granularity="1Minute",
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=args.min_healthy_percentage,
                    instance_warmup=str(args.health_check_grace_period))),
            tags=[aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
                  for k, v in tagged(spec.tags, name).items()],
            initial_lifecycle_hooks=[initial_hook_args(h) for h in args.initial_hooks] or None,
            warm_pool=warm_pool_args(args.warm_pool),
            # Removing the pool (warmPool off, or destroy) without it waits for every pool instance
            # through the termination hook, which a stopped instance never completes: longer than
            # the update timeout. Pool instances serve no call, so nothing is cut. Set with or
            # without a pool: the provider reads the new value when a pool is removed.
            force_delete_warm_pool=True,
            # The scaling policy owns the desired capacity once the group exists. AWS reads the
            # initial hooks only at creation (the LifecycleHook resources own them after): a stack
            # created before they were added shows no change for them.
            opts=child_opts(self, ignore_changes=["desiredCapacity", "initialLifecycleHooks"],
                            custom_timeouts=pulumi.CustomTimeouts(delete=args.delete_timeout or None)))
        self.scaling_policy = scaling_policy(name, self.group.name, args.scaling, child_opts(self))
        self.group_name = self.group.name
        self.register_outputs({"asg_name": self.group_name, "launch_template_id": self.launch_template.id})
