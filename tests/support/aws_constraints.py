"""Every resource input the program sends, checked against what AWS accepts.

Mocks accept any value; AWS does not. Each property of each resource the program
registers is mapped here to what it becomes on the wire:

- `Api`: an API field in botocore's service model (the machine-readable definition AWS
  publishes for its SDKs): enum, min/max length, numeric range and pattern are checked;
- `Prose`: a constraint AWS states only in its documentation, with the page cited;
- `NotMapped`: deliberately not checked, with the reason (e.g. not sent to AWS at all).

A property with none of these fails `unmapped()`: a new input is never silently passed.
Properties are named by path: `a.b` for nested objects, `a[]` for list items,
`tags{key}`/`tags{value}` for map keys and values; `(autoname)` is the name Pulumi
generates for a resource whose name the program leaves to it (`<name>-<7 random>`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Iterator

import botocore.session
import regex

from stun_infra.cloud.offline import OfflineRun, Registration

AUTONAME = "(autoname)"
AUTONAME_RANDOM = "abcdef0"  # Pulumi appends "-" and 7 random characters
MAP_PROPERTIES = {"tags", "dimensions", "variables"}  # objects whose keys are data, not fields


@dataclass(frozen=True)
class Api:
    service: str
    operation: str
    member: str  # path in the operation's input shape, same syntax as property paths


@dataclass(frozen=True)
class Prose:
    check: Callable[[Any], str | None]  # why the value is refused, or None
    doc: str  # the AWS page that states the rule


@dataclass(frozen=True)
class NotMapped:
    why: str


Target = Api | Prose | NotMapped


TRACKED = "targetTrackingConfiguration.customizedMetricSpecification.metrics[]"
TRACKED_API = "TargetTrackingConfiguration.CustomizedMetricSpecification.Metrics[]"

# -- prose rules: constraints AWS states only in its documentation ----------------------

def _charset(allowed: str, max_len: int, what: str) -> Callable[[Any], str | None]:
    pattern = regex.compile(f"[{allowed}]{{0,{max_len}}}")

    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"{what}: up to {max_len} of [{allowed}]"
        return None
    return check


def _max_chars(limit: int, what: str) -> Callable[[Any], str | None]:
    return lambda v: None if len(str(v)) <= limit else f"{what}: at most {limit} characters, got {len(str(v))}"


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}"


def _user_data_size(encoded: Any) -> str | None:
    raw = base64.b64decode(encoded)
    return None if len(raw) <= 16 * 1024 else f"user data is {len(raw)} bytes raw, at most 16384"


def _json_document(value: Any) -> str | None:
    try:
        json.loads(value)
    except (TypeError, ValueError) as e:
        return f"not a JSON document: {e}"
    return None


def _inline_policy_size(value: Any) -> str | None:
    # IAM counts the policy without whitespace against the role's 10,240-character quota.
    size = len("".join(str(value).split()))
    return None if size <= 10240 else f"inline policy is {size} characters without whitespace, at most 10240"


def _all(*checks: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return next((m for c in checks if (m := c(value))), None)
    return check


def _port(value: Any) -> str | None:
    return None if float(value).is_integer() and -1 <= value <= 65535 else "a port from 0 to 65535 (-1: all)"


# The security group rule and group description alphabet: "a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*".
SG_DESCRIPTION_CHARS = r"a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*"
# What every service that restricts tag characters accepts (the common denominator for
# tags set on every resource): "letters, numbers, and spaces representable in UTF-8, and
# the following characters: + - = . _ : / @".
TAG_CHARS = r"\p{L}\p{Z}\p{N}_.:/=+\-@"
TAGGING_DOC = "https://docs.aws.amazon.com/tag-editor/latest/userguide/best-practices-and-strats.html"
EC2_TAG_DOC = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html#tag-restrictions"

SG_RULE_DESCRIPTION = Prose(_charset(SG_DESCRIPTION_CHARS, 255, "security group rule description"),
                            "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpRange.html")
SG_DESCRIPTION = Prose(_charset(SG_DESCRIPTION_CHARS, 255, "security group description"),
                       "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html")
SG_NAME = Prose(_all(_max_chars(255, "security group name"),
                     lambda v: "must not start with sg-" if str(v).startswith("sg-") else None),
                "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html")
TAG_KEY = Prose(_all(_charset(TAG_CHARS, 128, "tag key"),
                     lambda v: "tag keys starting with aws: are reserved" if str(v).lower().startswith("aws:") else None),
                TAGGING_DOC)
TAG_VALUE = Prose(_charset(TAG_CHARS, 256, "tag value"), TAGGING_DOC)
TAG_COUNT = Prose(lambda tags: None if len(tags) <= 50 else f"{len(tags)} tags, at most 50 per resource",
                  EC2_TAG_DOC)
LB_NAME = Prose(_all(_charset("a-zA-Z0-9-", 32, "load balancer name"),
                     lambda v: "must not begin or end with a hyphen" if str(v)[:1] == "-" or str(v)[-1:] == "-" else None,
                     lambda v: "must not begin with internal-" if str(v).startswith("internal-") else None),
                "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html")
TARGET_GROUP_NAME = Prose(_all(_charset("a-zA-Z0-9-", 32, "target group name"),
                               lambda v: "must not begin or end with a hyphen" if str(v)[:1] == "-" or str(v)[-1:] == "-" else None),
                          "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html")
USER_DATA = Prose(_user_data_size, "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html")
IP_PROTOCOL = Prose(lambda v: None if v in ("tcp", "udp", "icmp", "icmpv6", "-1") or str(v).isdigit()
                    else "tcp, udp, icmp, icmpv6, -1 or a protocol number",
                    "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpPermission.html")
PORT = Prose(_port, "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_IpPermission.html")
# "The name can have a maximum of 64 characters, must contain only alphanumeric characters,
# periods (.), or hyphens (-), and must not begin or end with a hyphen or period."
GA_NAME = Prose(_all(_charset("a-zA-Z0-9.-", 64, "accelerator name"),
                     lambda v: None if not str(v)[:1] in "-." and not str(v)[-1:] in "-." else "begins or ends with - or ."),
                "https://docs.aws.amazon.com/global-accelerator/latest/api/API_CreateAccelerator.html")
DASHBOARD_NAME = Prose(_charset("A-Za-z0-9_-", 255, "dashboard name"),
                       "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html")
DASHBOARD_BODY = Prose(_json_document,
                       "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html")
TREAT_MISSING_DATA = Prose(_one_of("breaching", "notBreaching", "ignore", "missing"),
                           "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html")
HEALTH_CHECK_TYPE = Prose(_one_of("EC2", "ELB", "VPC_LATTICE", "EBS"),
                          "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html")
METRICS_GRANULARITY = Prose(_one_of("1Minute"),
                            "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_EnableMetricsCollection.html")
POLICY_TYPE = Prose(_one_of("SimpleScaling", "StepScaling", "TargetTrackingScaling", "PredictiveScaling"),
                    "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScalingPolicy.html")
INLINE_POLICY = Prose(_all(_json_document, _inline_policy_size),
                      "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html")
SSM_NAME = Prose(_all(_charset("a-zA-Z0-9_.\\-/", 1011, "parameter name"),
                      lambda v: "names must not start with aws or ssm" if str(v).lstrip("/").lower().startswith(("aws", "ssm")) else None),
                 "https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-parameter-name-constraints.html")
# Intelligent-Tiering stores a value over 4 KB as an advanced parameter: 8 KB at most.
SSM_VALUE = Prose(lambda v: None if len(str(v).encode()) <= 8192 else f"{len(str(v).encode())} bytes, at most 8192",
                  "https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html")
LOG_RETENTION = Prose(_one_of(*(float(d) for d in (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                                                   1096, 1827, 2192, 2557, 2922, 3288, 3653))),
                      "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html")
# For the `random`/`tls` providers: nothing reaches AWS.
LOCAL = NotMapped("computed locally by the provider; never sent to AWS")
# The bucket's name: the prefix plus 26 characters S3's provider appends, within S3's naming
# rules (3-63 lower-case letters, digits, '-'; no dots here: the user data's TLS name).
BUCKET_PREFIX_RULE = Prose(
    lambda v: None if regex.fullmatch(r"[a-z0-9][a-z0-9-]{0,36}", str(v)) else
    f"bucket prefix {v!r}: at most 37 lower-case letters, digits and '-' (S3 adds 26 characters, 63 in all)",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html")
OBJECT_KEY = Prose(lambda v: None if 0 < len(str(v).encode()) <= 1024 else f"object key of {len(str(v).encode())} bytes",
                   "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html")


def _single_put_size(encoded: Any) -> str | None:
    size = len(base64.b64decode(str(encoded)))
    return None if size <= 5 * 1024 ** 3 else f"{size} bytes in one PUT, at most 5 GB"


def _ec2_tags(operation: str, prefix: str = "TagSpecifications[].Tags[]") -> dict[str, Target | list[Target]]:
    return {"tags": TAG_COUNT, "tags{key}": [Api("ec2", operation, f"{prefix}.Key"), TAG_KEY],
            "tags{value}": [Api("ec2", operation, f"{prefix}.Value"), TAG_VALUE]}


def _list_tags(service: str, operation: str) -> dict[str, Target | list[Target]]:
    return {"tags": [Api(service, operation, "Tags"), TAG_COUNT],
            "tags{key}": [Api(service, operation, "Tags[].Key"), TAG_KEY],
            "tags{value}": [Api(service, operation, "Tags[].Value"), TAG_VALUE]}


def _ec2(operation: str, **members: str) -> dict[str, Api]:
    return {prop: Api("ec2", operation, member) for prop, member in members.items()}


RUN = "RunInstances"
LT = "CreateLaunchTemplate"
AUTH = "AuthorizeSecurityGroupIngress"  # egress rules take the same IpPermission shape
ASG = "CreateAutoScalingGroup"
ALARM = "PutMetricAlarm"
RRS = "ChangeBatch.Changes[].ResourceRecordSet"
ID_REF = NotMapped("the id of another resource of this stack, as AWS returned it")

MAPPING: dict[str, dict[str, Target | list[Target]]] = {
    "aws:ec2/vpc:Vpc": {
        **_ec2("CreateVpc", cidrBlock="CidrBlock", assignGeneratedIpv6CidrBlock="AmazonProvidedIpv6CidrBlock"),
        "enableDnsHostnames": Api("ec2", "ModifyVpcAttribute", "EnableDnsHostnames.Value"),
        "enableDnsSupport": Api("ec2", "ModifyVpcAttribute", "EnableDnsSupport.Value"),
        **_ec2_tags("CreateVpc")},
    "aws:ec2/internetGateway:InternetGateway": {"vpcId": ID_REF, **_ec2_tags("CreateInternetGateway")},
    "aws:ec2/subnet:Subnet": {
        **_ec2("CreateSubnet", availabilityZone="AvailabilityZone", cidrBlock="CidrBlock",
               ipv6CidrBlock="Ipv6CidrBlock"),
        "mapPublicIpOnLaunch": Api("ec2", "ModifySubnetAttribute", "MapPublicIpOnLaunch.Value"),
        "assignIpv6AddressOnCreation": Api("ec2", "ModifySubnetAttribute", "AssignIpv6AddressOnCreation.Value"),
        "vpcId": ID_REF, **_ec2_tags("CreateSubnet")},
    "aws:ec2/routeTable:RouteTable": {
        "routes[].cidrBlock": Api("ec2", "CreateRoute", "DestinationCidrBlock"), "routes[].gatewayId": ID_REF,
        "routes[].ipv6CidrBlock": Api("ec2", "CreateRoute", "DestinationIpv6CidrBlock"),
        "vpcId": ID_REF, **_ec2_tags("CreateRouteTable")},
    "aws:ec2/routeTableAssociation:RouteTableAssociation": {"routeTableId": ID_REF, "subnetId": ID_REF},
    "aws:ec2/securityGroup:SecurityGroup": {
        "description": [Api("ec2", "CreateSecurityGroup", "Description"), SG_DESCRIPTION],
        AUTONAME: [Api("ec2", "CreateSecurityGroup", "GroupName"), SG_NAME],
        "vpcId": ID_REF, **_ec2_tags("CreateSecurityGroup"),
        # Defect 8 (the default group allows nothing) brings rule blocks here; empty lists send nothing.
        "ingress": NotMapped("empty list: no rule is sent"), "egress": NotMapped("empty list: no rule is sent")},
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": {
        "vpcId": ID_REF, **_ec2_tags("CreateTags", "Tags[]"),
        "ingress": NotMapped("empty list: AWS's default rules are revoked, none sent"),
        "egress": NotMapped("empty list: AWS's default rules are revoked, none sent")},
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": {
        "cidrIpv4": Api("ec2", AUTH, "IpPermissions[].IpRanges[].CidrIp"),
        "cidrIpv6": Api("ec2", AUTH, "IpPermissions[].Ipv6Ranges[].CidrIpv6"),
        "description": [Api("ec2", AUTH, "IpPermissions[].IpRanges[].Description"), SG_RULE_DESCRIPTION],
        "ipProtocol": [Api("ec2", AUTH, "IpPermissions[].IpProtocol"), IP_PROTOCOL],
        "fromPort": [Api("ec2", AUTH, "IpPermissions[].FromPort"), PORT],
        "toPort": [Api("ec2", AUTH, "IpPermissions[].ToPort"), PORT],
        "referencedSecurityGroupId": [Api("ec2", AUTH, "IpPermissions[].UserIdGroupPairs[].GroupId"), ID_REF],
        "securityGroupId": ID_REF, **_ec2_tags(AUTH)},
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": {
        "cidrIpv4": Api("ec2", "AuthorizeSecurityGroupEgress", "IpPermissions[].IpRanges[].CidrIp"),
        "cidrIpv6": Api("ec2", "AuthorizeSecurityGroupEgress", "IpPermissions[].Ipv6Ranges[].CidrIpv6"),
        "description": [Api("ec2", "AuthorizeSecurityGroupEgress", "IpPermissions[].IpRanges[].Description"),
                        SG_RULE_DESCRIPTION],
        "ipProtocol": [Api("ec2", "AuthorizeSecurityGroupEgress", "IpPermissions[].IpProtocol"), IP_PROTOCOL],
        "fromPort": [Api("ec2", "AuthorizeSecurityGroupEgress", "IpPermissions[].FromPort"), PORT],
        "toPort": [Api("ec2", "AuthorizeSecurityGroupEgress", "IpPermissions[].ToPort"), PORT],
        "securityGroupId": ID_REF, **_ec2_tags("AuthorizeSecurityGroupEgress")},
    "aws:ec2/eip:Eip": {**_ec2("AllocateAddress", domain="Domain"), **_ec2_tags("AllocateAddress")},
    "aws:ec2/eipAssociation:EipAssociation": {"allocationId": ID_REF, "instanceId": ID_REF},
    "aws:ec2/keyPair:KeyPair": {
        "publicKey": Api("ec2", "ImportKeyPair", "PublicKeyMaterial"),
        AUTONAME: [Api("ec2", "ImportKeyPair", "KeyName"), Prose(_max_chars(255, "key pair name"),
                   "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ImportKeyPair.html")],
        **_ec2_tags("ImportKeyPair")},
    "aws:ec2/instance:Instance": {
        **_ec2(RUN, ami="ImageId", instanceType="InstanceType", ipv6AddressCount="Ipv6AddressCount",
               **{"metadataOptions.httpEndpoint": "MetadataOptions.HttpEndpoint",
                  "metadataOptions.httpPutResponseHopLimit": "MetadataOptions.HttpPutResponseHopLimit",
                  "metadataOptions.httpTokens": "MetadataOptions.HttpTokens",
                  "metadataOptions.instanceMetadataTags": "MetadataOptions.InstanceMetadataTags",
                  "monitoring": "Monitoring.Enabled",
                  "rootBlockDevice.deleteOnTermination": "BlockDeviceMappings[].Ebs.DeleteOnTermination",
                  "rootBlockDevice.encrypted": "BlockDeviceMappings[].Ebs.Encrypted",
                  "rootBlockDevice.volumeSize": "BlockDeviceMappings[].Ebs.VolumeSize",
                  "rootBlockDevice.volumeType": "BlockDeviceMappings[].Ebs.VolumeType"}),
        "userDataBase64": [Api("ec2", RUN, "UserData"), USER_DATA],
        "iamInstanceProfile": ID_REF, "keyName": ID_REF, "subnetId": ID_REF, "vpcSecurityGroupIds[]": ID_REF,
        **_ec2_tags(RUN),
        **{f"rootBlockDevice.{k}": v for k, v in _ec2_tags("CreateTags", "Tags[]").items()}},
    "aws:ec2/launchTemplate:LaunchTemplate": {
        **_ec2(LT, **{p: f"LaunchTemplateData.{m}" for p, m in {
            "imageId": "ImageId", "instanceType": "InstanceType",
            "metadataOptions.httpEndpoint": "MetadataOptions.HttpEndpoint",
            "metadataOptions.httpPutResponseHopLimit": "MetadataOptions.HttpPutResponseHopLimit",
            "metadataOptions.httpTokens": "MetadataOptions.HttpTokens",
            "metadataOptions.instanceMetadataTags": "MetadataOptions.InstanceMetadataTags",
            "monitoring.enabled": "Monitoring.Enabled",
            "blockDeviceMappings[].deviceName": "BlockDeviceMappings[].DeviceName",
            "blockDeviceMappings[].ebs.deleteOnTermination": "BlockDeviceMappings[].Ebs.DeleteOnTermination",
            "blockDeviceMappings[].ebs.encrypted": "BlockDeviceMappings[].Ebs.Encrypted",
            "blockDeviceMappings[].ebs.volumeSize": "BlockDeviceMappings[].Ebs.VolumeSize",
            "blockDeviceMappings[].ebs.volumeType": "BlockDeviceMappings[].Ebs.VolumeType",
            "networkInterfaces[].associatePublicIpAddress": "NetworkInterfaces[].AssociatePublicIpAddress",
            "networkInterfaces[].deleteOnTermination": "NetworkInterfaces[].DeleteOnTermination",
            "networkInterfaces[].ipv6AddressCount": "NetworkInterfaces[].Ipv6AddressCount",
            "tagSpecifications[].resourceType": "TagSpecifications[].ResourceType"}.items()}),
        "userData": [Api("ec2", LT, "LaunchTemplateData.UserData"), USER_DATA],
        AUTONAME: Api("ec2", LT, "LaunchTemplateName"),
        "iamInstanceProfile.arn": ID_REF, "keyName": ID_REF, "networkInterfaces[].securityGroups[]": ID_REF,
        "updateDefaultVersion": NotMapped("provider-side: calls ModifyLaunchTemplate after each new version"),
        **_ec2_tags(LT),
        **{f"tagSpecifications[].{k}": v for k, v in _ec2_tags(LT, "LaunchTemplateData.TagSpecifications[].Tags[]").items()}},
    "aws:autoscaling/group:Group": {
        **{p: Api("autoscaling", ASG, m) for p, m in {
            "defaultInstanceWarmup": "DefaultInstanceWarmup", "desiredCapacity": "DesiredCapacity",
            "healthCheckGracePeriod": "HealthCheckGracePeriod", "maxSize": "MaxSize", "minSize": "MinSize",
            "launchTemplate.id": "LaunchTemplate.LaunchTemplateId", "launchTemplate.version": "LaunchTemplate.Version",
            "tags[].propagateAtLaunch": "Tags[].PropagateAtLaunch", "targetGroupArns[]": "TargetGroupARNs[]",
            "vpcZoneIdentifiers[]": "VPCZoneIdentifier", AUTONAME: "AutoScalingGroupName"}.items()},
        "healthCheckType": [Api("autoscaling", ASG, "HealthCheckType"), HEALTH_CHECK_TYPE],
        "tags[].key": [Api("autoscaling", ASG, "Tags[].Key"), TAG_KEY],
        "tags[].value": [Api("autoscaling", ASG, "Tags[].Value"), TAG_VALUE],
        "enabledMetrics[]": Api("autoscaling", "EnableMetricsCollection", "Metrics[]"),
        "metricsGranularity": [Api("autoscaling", "EnableMetricsCollection", "Granularity"), METRICS_GRANULARITY],
        "instanceRefresh.strategy": Api("autoscaling", "StartInstanceRefresh", "Strategy"),
        "instanceRefresh.preferences.instanceWarmup": Api("autoscaling", "StartInstanceRefresh",
                                                          "Preferences.InstanceWarmup"),
        "instanceRefresh.preferences.minHealthyPercentage": Api("autoscaling", "StartInstanceRefresh",
                                                                "Preferences.MinHealthyPercentage"),
        **{f"initialLifecycleHooks[].{p}": Api("autoscaling", ASG, f"LifecycleHookSpecificationList[].{m}")
           for p, m in {"name": "LifecycleHookName", "lifecycleTransition": "LifecycleTransition",
                        "defaultResult": "DefaultResult"}.items()},
        # the same range as PutLifecycleHook's (the model gives the type only)
        "initialLifecycleHooks[].heartbeatTimeout": [
            Api("autoscaling", ASG, "LifecycleHookSpecificationList[].HeartbeatTimeout"), Prose(
                lambda v: None if 30 <= int(v) <= 7200 else "30-7200 seconds",
                "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_LifecycleHookSpecification.html")],
        "forceDeleteWarmPool": Api("autoscaling", "DeleteWarmPool", "ForceDelete"),  # when a pool is removed
        **{f"warmPool.{p}": Api("autoscaling", "PutWarmPool", m) for p, m in {
            "poolState": "PoolState", "minSize": "MinSize", "maxGroupPreparedCapacity": "MaxGroupPreparedCapacity",
            "instanceReusePolicy.reuseOnScaleIn": "InstanceReusePolicy.ReuseOnScaleIn"}.items()}},
    "aws:autoscaling/policy:Policy": {
        "autoscalingGroupName": Api("autoscaling", "PutScalingPolicy", "AutoScalingGroupName"),
        "policyType": [Api("autoscaling", "PutScalingPolicy", "PolicyType"), POLICY_TYPE],
        "targetTrackingConfiguration.predefinedMetricSpecification.predefinedMetricType": Api(
            "autoscaling", "PutScalingPolicy",
            "TargetTrackingConfiguration.PredefinedMetricSpecification.PredefinedMetricType"),
        "targetTrackingConfiguration.targetValue": Api("autoscaling", "PutScalingPolicy",
                                                       "TargetTrackingConfiguration.TargetValue"),
        **{f"{TRACKED}.{p}": Api("autoscaling", "PutScalingPolicy", f"{TRACKED_API}.{m}") for p, m in {
            "id": "Id", "expression": "Expression", "label": "Label", "returnData": "ReturnData",
            "metricStat.stat": "MetricStat.Stat", "metricStat.period": "MetricStat.Period",
            "metricStat.metric.namespace": "MetricStat.Metric.Namespace",
            "metricStat.metric.metricName": "MetricStat.Metric.MetricName",
            "metricStat.metric.dimensions[].name": "MetricStat.Metric.Dimensions[].Name",
            "metricStat.metric.dimensions[].value": "MetricStat.Metric.Dimensions[].Value"}.items()},
        AUTONAME: Api("autoscaling", "PutScalingPolicy", "PolicyName")},
    "aws:autoscaling/lifecycleHook:LifecycleHook": {
        **{p: Api("autoscaling", "PutLifecycleHook", m) for p, m in {
            "name": "LifecycleHookName", "autoscalingGroupName": "AutoScalingGroupName",
            "lifecycleTransition": "LifecycleTransition", "heartbeatTimeout": "HeartbeatTimeout",
            "defaultResult": "DefaultResult"}.items()},
        # PutLifecycleHook's model gives the type only; the range is in its documentation
        "heartbeatTimeout": [Api("autoscaling", "PutLifecycleHook", "HeartbeatTimeout"), Prose(
            lambda v: None if 30 <= int(v) <= 7200 else "30-7200 seconds",
            "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html")]},
    "aws:ssm/document:Document": {
        "name": Api("ssm", "CreateDocument", "Name"), "content": Api("ssm", "CreateDocument", "Content"),
        "documentType": Api("ssm", "CreateDocument", "DocumentType"),
        "documentFormat": Api("ssm", "CreateDocument", "DocumentFormat"), **_list_tags("ssm", "CreateDocument")},
    "aws:lb/loadBalancer:LoadBalancer": {
        "loadBalancerType": Api("elbv2", "CreateLoadBalancer", "Type"),
        "internal": Prose(lambda v: None if isinstance(v, bool) else "boolean: scheme internal or internet-facing",
                          "https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateLoadBalancer.html"),
        "subnets[]": Api("elbv2", "CreateLoadBalancer", "Subnets[]"),
        "enableCrossZoneLoadBalancing": Api("elbv2", "ModifyLoadBalancerAttributes", "Attributes[].Value"),
        "ipAddressType": Api("elbv2", "CreateLoadBalancer", "IpAddressType"),
        "enablePrefixForIpv6SourceNat": Api("elbv2", "CreateLoadBalancer", "EnablePrefixForIpv6SourceNat"),
        "securityGroups[]": [Api("elbv2", "CreateLoadBalancer", "SecurityGroups[]"), ID_REF],
        AUTONAME: [Api("elbv2", "CreateLoadBalancer", "Name"), LB_NAME],
        **_list_tags("elbv2", "CreateLoadBalancer")},
    "aws:lb/targetGroup:TargetGroup": {
        **{p: Api("elbv2", "CreateTargetGroup", m) for p, m in {
            "port": "Port", "protocol": "Protocol", "targetType": "TargetType", "ipAddressType": "IpAddressType",
            "healthCheck.protocol": "HealthCheckProtocol", "healthCheck.port": "HealthCheckPort",
            "healthCheck.interval": "HealthCheckIntervalSeconds", "healthCheck.timeout": "HealthCheckTimeoutSeconds",
            "healthCheck.healthyThreshold": "HealthyThresholdCount",
            "healthCheck.unhealthyThreshold": "UnhealthyThresholdCount"}.items()},
        **{p: Api("elbv2", "ModifyTargetGroupAttributes", "Attributes[].Value")
           for p in ("connectionTermination", "deregistrationDelay", "preserveClientIp")},
        AUTONAME: [Api("elbv2", "CreateTargetGroup", "Name"), TARGET_GROUP_NAME],
        "vpcId": ID_REF, **_list_tags("elbv2", "CreateTargetGroup")},
    "aws:lb/listener:Listener": {
        "port": Api("elbv2", "CreateListener", "Port"), "protocol": Api("elbv2", "CreateListener", "Protocol"),
        "defaultActions[].type": Api("elbv2", "CreateListener", "DefaultActions[].Type"),
        "defaultActions[].targetGroupArn": ID_REF, "loadBalancerArn": ID_REF,
        "sslPolicy": [Api("elbv2", "CreateListener", "SslPolicy"),
                      Prose(_one_of("ELBSecurityPolicy-TLS13-1-2-2021-06"),
                            "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/describe-ssl-policies.html")],
        "certificateArn": [Api("elbv2", "CreateListener", "Certificates[].CertificateArn"), ID_REF],
        **_list_tags("elbv2", "CreateListener")},
    "aws:lb/listenerRule:ListenerRule": {
        "listenerArn": ID_REF, "priority": Api("elbv2", "CreateRule", "Priority"),
        "conditions[].sourceIp.ipAddressType": Api("elbv2", "CreateRule", "Conditions[].SourceIpConfig.IpAddressType"),
        "actions[].type": Api("elbv2", "CreateRule", "Actions[].Type"), "actions[].targetGroupArn": ID_REF,
        **_list_tags("elbv2", "CreateRule")},
    "aws:acm/certificate:Certificate": {
        "domainName": Api("acm", "RequestCertificate", "DomainName"),
        "subjectAlternativeNames": Api("acm", "RequestCertificate", "SubjectAlternativeNames"),
        "subjectAlternativeNames[]": Api("acm", "RequestCertificate", "SubjectAlternativeNames[]"),
        "validationMethod": Api("acm", "RequestCertificate", "ValidationMethod"),
        "options.export": Api("acm", "RequestCertificate", "Options.Export"),
        **_list_tags("acm", "RequestCertificate")},
    "aws:acm/certificateValidation:CertificateValidation": {
        "certificateArn": NotMapped("provider-side wait for this certificate's ISSUED status; no API input"),
        "validationRecordFqdns[]": NotMapped("provider-side check that these records exist; no API input")},
    "aws:route53/record:Record": {
        "zoneId": Api("route53", "ChangeResourceRecordSets", "HostedZoneId"),
        **{p: Api("route53", "ChangeResourceRecordSets", f"{RRS}.{m}") for p, m in {
            "name": "Name", "type": "Type", "ttl": "TTL", "setIdentifier": "SetIdentifier",
            "multivalueAnswerRoutingPolicy": "MultiValueAnswer", "records[]": "ResourceRecords[].Value",
            "aliases[].name": "AliasTarget.DNSName", "aliases[].zoneId": "AliasTarget.HostedZoneId",
            "aliases[].evaluateTargetHealth": "AliasTarget.EvaluateTargetHealth",
            "latencyRoutingPolicies[].region": "Region", "healthCheckId": "HealthCheckId"}.items()},
        "allowOverwrite": NotMapped("provider-side: UPSERT instead of CREATE (ACM's validation CNAME may exist)")},
    "aws:route53/healthCheck:HealthCheck": {
        **{p: Api("route53", "CreateHealthCheck", f"HealthCheckConfig.{m}") for p, m in {
            "type": "Type", "fqdn": "FullyQualifiedDomainName", "ipAddress": "IPAddress", "port": "Port",
            "requestInterval": "RequestInterval", "failureThreshold": "FailureThreshold",
            "childHealthchecks": "ChildHealthChecks", "childHealthchecks[]": "ChildHealthChecks[]",
            "childHealthThreshold": "HealthThreshold"}.items()},
        # Tags go through ChangeTagsForResource, at most 10 (AddTags' limit).
        "tags": Api("route53", "ChangeTagsForResource", "AddTags"),
        "tags{key}": Api("route53", "ChangeTagsForResource", "AddTags[].Key"),
        "tags{value}": Api("route53", "ChangeTagsForResource", "AddTags[].Value")},
    "aws:globalaccelerator/accelerator:Accelerator": {
        "name": [Api("globalaccelerator", "CreateAccelerator", "Name"), GA_NAME],
        "ipAddressType": Api("globalaccelerator", "CreateAccelerator", "IpAddressType"),
        "enabled": Api("globalaccelerator", "CreateAccelerator", "Enabled"),
        "tags": [Api("globalaccelerator", "CreateAccelerator", "Tags"), TAG_COUNT],
        "tags{key}": [Api("globalaccelerator", "CreateAccelerator", "Tags[].Key"), TAG_KEY],
        "tags{value}": [Api("globalaccelerator", "CreateAccelerator", "Tags[].Value"), TAG_VALUE]},
    "aws:globalaccelerator/listener:Listener": {
        "acceleratorArn": ID_REF, "protocol": Api("globalaccelerator", "CreateListener", "Protocol"),
        "portRanges": Api("globalaccelerator", "CreateListener", "PortRanges"),
        "portRanges[].fromPort": Api("globalaccelerator", "CreateListener", "PortRanges[].FromPort"),
        "portRanges[].toPort": Api("globalaccelerator", "CreateListener", "PortRanges[].ToPort")},
    "aws:globalaccelerator/endpointGroup:EndpointGroup": {
        "listenerArn": ID_REF,
        **{p: Api("globalaccelerator", "CreateEndpointGroup", m) for p, m in {
            "endpointGroupRegion": "EndpointGroupRegion", "healthCheckPort": "HealthCheckPort",
            "healthCheckProtocol": "HealthCheckProtocol", "healthCheckIntervalSeconds": "HealthCheckIntervalSeconds",
            "thresholdCount": "ThresholdCount", "endpointConfigurations": "EndpointConfigurations",
            "endpointConfigurations[].endpointId": "EndpointConfigurations[].EndpointId",
            "endpointConfigurations[].weight": "EndpointConfigurations[].Weight",
            "endpointConfigurations[].clientIpPreservationEnabled":
                "EndpointConfigurations[].ClientIPPreservationEnabled"}.items()},
        "endpointConfigurations[].endpointId": [
            Api("globalaccelerator", "CreateEndpointGroup", "EndpointConfigurations[].EndpointId"), ID_REF]},
    "pulumi:providers:aws": {
        "region": NotMapped("the provider's region: settings check it against botocore's regions (regions.json)"),
        "skipCredentialsValidation": LOCAL, "skipRegionValidation": LOCAL},
    "aws:cloudwatch/dashboard:Dashboard": {
        "dashboardName": [Api("cloudwatch", "PutDashboard", "DashboardName"), DASHBOARD_NAME],
        "dashboardBody": [Api("cloudwatch", "PutDashboard", "DashboardBody"), DASHBOARD_BODY]},
    "aws:cloudwatch/logGroup:LogGroup": {
        "name": Api("logs", "CreateLogGroup", "logGroupName"),
        "retentionInDays": [Api("logs", "PutRetentionPolicy", "retentionInDays"), LOG_RETENTION],
        "tags": [Api("logs", "CreateLogGroup", "tags"), TAG_COUNT],
        "tags{key}": [Api("logs", "CreateLogGroup", "tags{key}"), TAG_KEY],
        "tags{value}": [Api("logs", "CreateLogGroup", "tags{value}"), TAG_VALUE]},
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": {
        "logGroupName": Api("logs", "PutMetricFilter", "logGroupName"),
        "pattern": Api("logs", "PutMetricFilter", "filterPattern"),
        AUTONAME: Api("logs", "PutMetricFilter", "filterName"),
        **{f"metricTransformation.{p}": Api("logs", "PutMetricFilter", f"metricTransformations[].{m}") for p, m in {
            "name": "metricName", "namespace": "metricNamespace", "value": "metricValue",
            "defaultValue": "defaultValue", "unit": "unit"}.items()}},
    "aws:cloudwatch/metricAlarm:MetricAlarm": {
        **{p: Api("cloudwatch", ALARM, m) for p, m in {
            "alarmDescription": "AlarmDescription", "comparisonOperator": "ComparisonOperator",
            "datapointsToAlarm": "DatapointsToAlarm", "evaluationPeriods": "EvaluationPeriods",
            "metricName": "MetricName", "namespace": "Namespace", "period": "Period", "statistic": "Statistic",
            "threshold": "Threshold", "alarmActions": "AlarmActions", "alarmActions[]": "AlarmActions[]",
            "okActions": "OKActions", "okActions[]": "OKActions[]", "dimensions": "Dimensions",
            "dimensions{key}": "Dimensions[].Name", "dimensions{value}": "Dimensions[].Value",
            "metricQueries[].id": "Metrics[].Id", "metricQueries[].expression": "Metrics[].Expression",
            "metricQueries[].label": "Metrics[].Label", "metricQueries[].returnData": "Metrics[].ReturnData",
            "metricQueries[].metric.metricName": "Metrics[].MetricStat.Metric.MetricName",
            "metricQueries[].metric.namespace": "Metrics[].MetricStat.Metric.Namespace",
            "metricQueries[].metric.period": "Metrics[].MetricStat.Period",
            "metricQueries[].metric.stat": "Metrics[].MetricStat.Stat",
            "metricQueries[].metric.dimensions{key}": "Metrics[].MetricStat.Metric.Dimensions[].Name",
            "metricQueries[].metric.dimensions{value}": "Metrics[].MetricStat.Metric.Dimensions[].Value",
            AUTONAME: "AlarmName"}.items()},
        "treatMissingData": [Api("cloudwatch", ALARM, "TreatMissingData"), TREAT_MISSING_DATA],
        **_list_tags("cloudwatch", ALARM)},
    "aws:sns/topic:Topic": {AUTONAME: Prose(_charset("A-Za-z0-9_-", 256, "topic name"),
                                            "https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html"),
                            **_list_tags("sns", "CreateTopic")},
    "aws:sns/topicSubscription:TopicSubscription": {
        "protocol": [Api("sns", "Subscribe", "Protocol"), Prose(_one_of("email", "email-json", "http", "https", "sms",
                                                                         "sqs", "application", "lambda", "firehose"),
                                                                "https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html")],
        "endpoint": Api("sns", "Subscribe", "Endpoint"), "topic": ID_REF},
    "aws:ssm/parameter:Parameter": {
        "name": [Api("ssm", "PutParameter", "Name"), SSM_NAME],
        "description": Api("ssm", "PutParameter", "Description"),
        "type": Api("ssm", "PutParameter", "Type"), "tier": Api("ssm", "PutParameter", "Tier"),
        "value": [Api("ssm", "PutParameter", "Value"), SSM_VALUE],
        "insecureValue": [Api("ssm", "PutParameter", "Value"), SSM_VALUE],
        **_list_tags("ssm", "PutParameter")},
    "aws:iam/role:Role": {
        "assumeRolePolicy": [Api("iam", "CreateRole", "AssumeRolePolicyDocument"), Prose(
            _json_document, "https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html")],
        "description": Api("iam", "CreateRole", "Description"),
        AUTONAME: Api("iam", "CreateRole", "RoleName"), **_list_tags("iam", "CreateRole")},
    "aws:iam/rolePolicy:RolePolicy": {
        "policy": [Api("iam", "PutRolePolicy", "PolicyDocument"), INLINE_POLICY],
        "role": ID_REF, AUTONAME: Api("iam", "PutRolePolicy", "PolicyName")},
    "aws:iam/instanceProfile:InstanceProfile": {
        "role": Api("iam", "AddRoleToInstanceProfile", "RoleName"),
        AUTONAME: Api("iam", "CreateInstanceProfile", "InstanceProfileName"),
        **_list_tags("iam", "CreateInstanceProfile")},
    "aws:lambda/function:Function": {
        **{p: Api("lambda", "CreateFunction", m) for p, m in {
            "runtime": "Runtime", "handler": "Handler", "timeout": "Timeout", "memorySize": "MemorySize",
            "architectures[]": "Architectures[]", "environment.variables{key}": "Environment.Variables{key}",
            "environment.variables{value}": "Environment.Variables{value}",
            "loggingConfig.logFormat": "LoggingConfig.LogFormat", "loggingConfig.logGroup": "LoggingConfig.LogGroup",
            "tags{key}": "Tags{key}", "tags{value}": "Tags{value}"}.items()},
        AUTONAME: [Api("lambda", "CreateFunction", "FunctionName"), Prose(
            _max_chars(64, "function name"), "https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html")],
        "tags": TAG_COUNT, "tags{key}": [Api("lambda", "CreateFunction", "Tags{key}"), TAG_KEY],
        "tags{value}": [Api("lambda", "CreateFunction", "Tags{value}"), TAG_VALUE],
        "role": [Api("lambda", "CreateFunction", "Role"), ID_REF],
        "code": NotMapped("a zip of one source file the provider builds and sends as ZipFile")},
    "aws:lambda/permission:Permission": {
        "action": Api("lambda", "AddPermission", "Action"), "principal": Api("lambda", "AddPermission", "Principal"),
        "sourceArn": [Api("lambda", "AddPermission", "SourceArn"), ID_REF], "function": ID_REF},
    "aws:cloudwatch/eventRule:EventRule": {
        **{p: Api("events", "PutRule", m) for p, m in {
            "description": "Description", "eventPattern": "EventPattern", "scheduleExpression": "ScheduleExpression",
            AUTONAME: "Name"}.items()},
        **_list_tags("events", "PutRule")},
    "aws:cloudwatch/eventTarget:EventTarget": {
        "arn": [Api("events", "PutTargets", "Targets[].Arn"), ID_REF], "rule": ID_REF},
    "aws:s3/bucket:Bucket": {
        "bucketPrefix": BUCKET_PREFIX_RULE,
        "forceDestroy": NotMapped("the provider empties the bucket before deleting it; never sent to AWS"),
        "tags": [Api("s3", "PutBucketTagging", "Tagging.TagSet"), TAG_COUNT],
        "tags{key}": [Api("s3", "PutBucketTagging", "Tagging.TagSet[].Key"), TAG_KEY],
        "tags{value}": [Api("s3", "PutBucketTagging", "Tagging.TagSet[].Value"), TAG_VALUE]},
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": {
        "bucket": ID_REF, **{p: Api("s3", "PutPublicAccessBlock", f"PublicAccessBlockConfiguration.{m}") for p, m in {
            "blockPublicAcls": "BlockPublicAcls", "blockPublicPolicy": "BlockPublicPolicy",
            "ignorePublicAcls": "IgnorePublicAcls", "restrictPublicBuckets": "RestrictPublicBuckets"}.items()}},
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {
        "bucket": ID_REF,
        "rules[].applyServerSideEncryptionByDefault.sseAlgorithm": Api(
            "s3", "PutBucketEncryption",
            "ServerSideEncryptionConfiguration.Rules[].ApplyServerSideEncryptionByDefault.SSEAlgorithm")},
    "aws:s3/bucketPolicy:BucketPolicy": {
        "bucket": ID_REF,
        "policy": [Api("s3", "PutBucketPolicy", "Policy"), Prose(
            _json_document, "https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketPolicy.html")]},
    "aws:s3/bucketObjectv2:BucketObjectv2": {
        "bucket": ID_REF, "key": [Api("s3", "PutObject", "Key"), OBJECT_KEY],
        "contentBase64": Prose(_single_put_size, "https://docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html"),
        "contentType": Api("s3", "PutObject", "ContentType"),
        "serverSideEncryption": Api("s3", "PutObject", "ServerSideEncryption")},
    "random:index/randomPassword:RandomPassword": {"length": LOCAL, "special": LOCAL},
    "tls:index/privateKey:PrivateKey": {"algorithm": LOCAL, "ecdsaCurve": LOCAL, "rsaBits": LOCAL},
    "tls:index/selfSignedCert:SelfSignedCert": {
        "allowedUses[]": LOCAL, "dnsNames[]": LOCAL, "earlyRenewalHours": LOCAL, "privateKeyPem": LOCAL,
        "subject.commonName": LOCAL, "subject.organization": LOCAL, "validityPeriodHours": LOCAL},
}

# Types Pulumi names `<logical name>-<7 random characters>` when the program gives no name.
AUTONAMED = {t for t, props in MAPPING.items() if AUTONAME in props}


# -- walking a registration's inputs ---------------------------------------------------

def properties(inputs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, value) for every leaf, and for maps and lists as a whole (for count limits)."""
    def walk(value: Any, path: str, key: str) -> Iterator[tuple[str, Any]]:
        if isinstance(value, dict) and key in MAP_PROPERTIES:
            yield path, value
            for k, v in value.items():
                yield f"{path}{{key}}", k
                yield f"{path}{{value}}", v
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, f"{path}.{k}" if path else k, k)
        elif isinstance(value, list):
            yield path, value
            for item in value:
                yield from walk(item, f"{path}[]", "")
        else:
            yield path, value
    yield from walk(inputs, "", "")


def sent_properties(r: Registration) -> Iterator[tuple[str, Any]]:
    """Every property of a registration, with the name Pulumi generates when it names the resource."""
    yield from properties(r.inputs)
    if r.type in AUTONAMED and "name" not in r.inputs:
        yield AUTONAME, f"{r.name}-{AUTONAME_RANDOM}"


def _targets(typ: str, path: str) -> list[Target] | None:
    found = MAPPING.get(typ, {}).get(path)
    return None if found is None else found if isinstance(found, list) else [found]


def unmapped(run: OfflineRun) -> set[tuple[str, str]]:
    """(type, property path) the registrations carry that nobody mapped.

    Scalars and empty lists must be mapped; a filled list or a map as a whole need not be
    (its items, keys and values are), but is checked when it is (count limits)."""
    out = set()
    for r in run.registrations:
        if not r.custom:
            continue
        for path, value in sent_properties(r):
            whole = (isinstance(value, list) and value) or isinstance(value, dict)
            if not whole and _targets(r.type, path) is None:
                out.add((r.type, path))
    return out


# -- botocore's service models ----------------------------------------------------------

@cache
def _model(service: str):
    return botocore.session.get_session().get_service_model(service)


def shape_of(api: Api):
    """The botocore shape an Api target names; KeyError when the member does not exist."""
    shape = _model(api.service).operation_model(api.operation).input_shape
    for part in regex.findall(r"[^.\[\]{}]+|\[\]|\{key\}|\{value\}", api.member):
        if part == "[]":
            shape = shape.member
        elif part == "{key}":
            shape = shape.key
        elif part == "{value}":
            shape = shape.value
        else:
            shape = shape.members[part]
    return shape


# Java/Smithy regex forms Python's engines spell differently.
_PATTERN_FIXES = {r"\uD800\uDC00-\uDBFF\uDFFF": r"\U00010000-\U0010FFFF"}


@cache
def _pattern(text: str):
    for java, python in _PATTERN_FIXES.items():
        text = text.replace(java, python)
    return regex.compile(text)


def _as_api_value(shape, value: Any) -> tuple[Any, str | None]:
    """The value as the provider sends it for this shape type, or why it cannot be."""
    kind = shape.type_name
    if kind == "boolean":
        if isinstance(value, bool) or value in ("true", "false"):
            return value, None
        return value, "must be a boolean"
    if kind in ("integer", "long"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return value, "must be a whole number"
        return (int(number), None) if number.is_integer() else (value, "must be a whole number")
    if kind == "double":
        try:
            return float(value), None
        except (TypeError, ValueError):
            return value, "must be a number"
    if kind in ("string", "blob"):
        if isinstance(value, bool):
            return ("true" if value else "false"), None
        if isinstance(value, float) and value.is_integer():
            return str(int(value)), None
        return str(value), None
    return value, None  # lists and maps: only their size is checked


def api_problem(api: Api, value: Any) -> str | None:
    """Why botocore's model of this field refuses the value, or None."""
    shape = shape_of(api)
    value, problem = _as_api_value(shape, value)
    if problem:
        return problem
    meta = shape.metadata
    if shape.type_name in ("string", "blob"):
        if "min" in meta and len(value) < meta["min"]:
            return f"at least {meta['min']} characters, got {len(value)}"
        if "max" in meta and len(value) > meta["max"]:
            return f"at most {meta['max']} characters, got {len(value)}"
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            return f"must match {meta['pattern']}"
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            return f"not one of the {len(enum)} values the API accepts"
    elif shape.type_name in ("integer", "long", "double"):
        if "min" in meta and value < meta["min"]:
            return f"at least {meta['min']}, got {value}"
        if "max" in meta and value > meta["max"]:
            return f"at most {meta['max']}, got {value}"
    elif shape.type_name in ("list", "map"):
        if "min" in meta and len(value) < meta["min"]:
            return f"at least {meta['min']} items, got {len(value)}"
        if "max" in meta and len(value) > meta["max"]:
            return f"at most {meta['max']} items, got {len(value)}"
    return None


@dataclass(frozen=True)
class Violation:
    type: str
    name: str
    path: str
    value: str
    problem: str
    source: str  # the botocore field or the documentation page

    def __str__(self) -> str:
        return f"{self.type} {self.name} {self.path} = {self.value}: {self.problem} ({self.source})"


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def violations(run: OfflineRun) -> list[Violation]:
    """Every mapped property whose value AWS would refuse."""
    found = []
    for r in run.registrations:
        if not r.custom:
            continue
        for path, value in sent_properties(r):
            for target in _targets(r.type, path) or ():
                if isinstance(target, Api):
                    problem, source = api_problem(target, value), f"{target.service} {target.operation} {target.member}"
                elif isinstance(target, Prose):
                    problem, source = target.check(value), target.doc
                else:
                    continue
                if problem:
                    found.append(Violation(r.type, r.name, path, _shown(value), problem, source))
    return found

