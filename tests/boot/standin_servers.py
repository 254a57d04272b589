"""Stand-ins for the services an EC2 instance reaches at boot, run inside the test's
network namespace (`ip netns exec NS python standin_servers.py KIND CONFIG.json`, the
config's keys named below; started and killed by pid by standins.py).

- `imds`: the instance metadata service, IMDSv2 only (a GET without a valid token is
  401, like an instance launched with http_tokens=required), serving `metadata` (the
  instance's addresses, id, region, its role's temporary credentials: standins.Instance),
  the `user_data` file's bytes and the `lifecycle` file's state.
- `ssm`: moto's server (AWS Systems Manager, CloudWatch and the rest of moto) behind TLS
  on the regional endpoints' address, plus a plain-HTTP listener on the namespace's
  loopback for seeding and for reading back what was published. Both listeners share
  moto's in-process state.
- `files`: a static file server (HTTP or HTTPS) for the Debian mirror stand-in, the
  agent packages and the stack's package bucket, from the first of the `root` directories
  that holds the path. With `pool_dir`, a `.../pool/.../<name>.deb` request is answered
  from that directory by file name when it holds one. With
  `signed_host`, a request to that host (the bucket's virtual-hosted name) must carry
  an AWS Signature Version 4 that botocore computes the same from `signing_secret` and
  the session token, as S3 does; else 403, as S3 answers. `faults` names a JSON file
  {URL path: fault}, read on every request.

Every stand-in appends one JSON line per request to `log` and prints `ready` on stdout
once it listens.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_log_lock = threading.Lock()
IMDS_ADDRESS = "169.254.169.254"


def _log(log_file: str, **entry: object) -> None:
    entry["t"] = round(time.time(), 3)
    with _log_lock, open(log_file, "a") as f:
        f.write(json.dumps(entry) + "\n")


def _serve(server: ThreadingHTTPServer, tls: tuple[str, str] | None = None) -> None:
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


# -- IMDS ------------------------------------------------------------------------------

def _latest(path: str) -> str:
    """/2021-03-23/meta-data/x -> /latest/meta-data/x: every API version serves the same here
    (cloud-init asks for a dated version, the scripts for latest)."""
    parts = path.split("/", 2)
    if len(parts) > 2 and parts[1][:2] == "20" and parts[1][4:5] == "-":
        return "/latest/" + parts[2]
    return path


def _listing(table: dict[str, str], directory: str) -> str:
    """A directory's listing as IMDS gives it: one entry a line, subdirectories with a slash."""
    directory = directory.strip("/") + "/" if directory.strip("/") else ""
    entries = {k[len(directory):].split("/")[0] + ("/" if "/" in k[len(directory):] else "")
               for k in table if k.startswith(directory) and k != directory}
    return "\n".join(sorted(entries))


def imds(args: argparse.Namespace) -> None:
    tokens: dict[str, float] = {}
    table = args.metadata  # path under /latest/ -> text

    class Handler(BaseHTTPRequestHandler):
        server_version = "EC2ws"
        sys_version = ""

        def log_message(self, *a: object) -> None:  # requests go to the JSON log
            pass

        def _reply(self, status: int, body: str | bytes = "", headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            _log(args.log, method=self.command, path=self.path, status=status,
                 token=bool(self.headers.get("X-aws-ec2-metadata-token")),
                 agent=self.headers.get("User-Agent", ""))

        def do_PUT(self) -> None:
            if self.path != "/latest/api/token":
                return self._reply(404, "Not Found")
            if self.headers.get("X-Forwarded-For"):
                return self._reply(403, "Forbidden")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self._reply(400, "Bad Request")
            token = secrets.token_urlsafe(40)
            tokens[token] = time.time() + int(ttl)
            self._reply(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": ttl})

        def do_GET(self) -> None:
            token = self.headers.get("X-aws-ec2-metadata-token", "")
            # cloud-init in a container cannot tell it is on AWS (it ignores DMI there), and
            # then reads IMDS without a token, at dated API versions: answered there only
            # (our programs read /latest/, where a token is required).
            dated = _latest(self.path) != self.path
            if tokens.get(token, 0) < time.time() and not dated:
                return self._reply(401, "Unauthorized")
            path = _latest(self.path.split("?", 1)[0])
            if path == "/latest/user-data":  # as EC2 serves it: the bytes given at launch
                data = Path(args.user_data)
                return self._reply(200, data.read_bytes()) if data.exists() else self._reply(404, "Not Found")
            # An Auto Scaling instance's target lifecycle state: what the test wrote (none: 404,
            # as for an instance outside a group)
            state = Path(args.lifecycle)
            if path == "/latest/meta-data/autoscaling/target-lifecycle-state" and state.exists():
                return self._reply(200, state.read_text().strip())
            leaf = path.removeprefix("/latest/")
            if leaf in table:
                return self._reply(200, table[leaf])
            if path.startswith("/latest/") and leaf.strip("/") and _listing(table, leaf):
                return self._reply(200, _listing(table, leaf))
            self._reply(404, "Not Found")

    _serve(ThreadingHTTPServer((IMDS_ADDRESS, 80), Handler))
    _ready()


# -- SSM (moto) ------------------------------------------------------------------------

def ssm(args: argparse.Namespace) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    app = DomainDispatcherApplication(create_backend_app)

    def logged(environ, start_response):  # noqa: ANN001
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # for moto to read again
        entry = {"host": environ.get("HTTP_HOST", ""), "target": environ.get("HTTP_X_AMZ_TARGET", ""),
                 "scheme": environ.get("wsgi.url_scheme", ""),
                 "access_key_id": _access_key(environ.get("HTTP_AUTHORIZATION", "")),
                 "session_token": bool(environ.get("HTTP_X_AMZ_SECURITY_TOKEN"))}
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            # the query protocol (CloudWatch for the AWS CLI): Action=...&Namespace=...
            form = urllib.parse.parse_qs(body.decode(errors="replace"))
            entry["action"] = form.get("Action", [""])[0]
            entry["namespace"] = form.get("Namespace", [""])[0]
        elif body.startswith(b"{"):  # the JSON protocol (Parameter Store)
            doc = json.loads(body)
            entry.update(name=doc.get("Name", ""), names=doc.get("Names", []),  # Names: GetParameters (secret sync)
                         with_decryption=doc.get("WithDecryption", False))

        def sr(status, headers, exc_info=None):  # noqa: ANN001
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        canned = _lifecycle_api(environ, body, args)
        if environ.get("SERVER_PORT") == str(args.seed_port) and environ.get("PATH_INFO") == ACM_RENEWAL_PATH:
            canned = _acm_renewal(body)  # the test's listener only
        if canned is not None:
            entry.update(canned[1])
        out = app(environ, sr) if canned is None else Response(canned[0], content_type="text/xml")(environ, sr)
        _log(args.log, **entry)
        return out

    servers = [
        make_server(args.bind, 443, logged, threaded=True, request_handler=MotoRequestHandler,
                    ssl_context=(args.cert, args.key)),
        make_server("127.0.0.1", args.seed_port, logged, threaded=True, request_handler=MotoRequestHandler),
    ]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()

    import boto3

    seed = {"region_name": args.region, "endpoint_url": f"http://127.0.0.1:{args.seed_port}",
            "aws_access_key_id": "seed", "aws_secret_access_key": "seed"}
    for name, value in args.parameters.items():
        boto3.client("ssm", **seed).put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    # the stack's log group, which the deployed stack creates before any instance
    boto3.client("logs", **seed).create_log_group(logGroupName=args.log_group)
    _ready()


LIFECYCLE_FIELDS = ("LifecycleHookName", "AutoScalingGroupName", "InstanceId", "LifecycleActionResult")


def _lifecycle_api(environ, body: bytes, args: argparse.Namespace) -> tuple[bytes, dict] | None:  # noqa: ANN001
    """What moto 5.2 lacks, answered here: Auto Scaling's CompleteLifecycleAction (recorded
    with its parameters), EC2's DescribeTags for the group tag of the instance, and ELB's
    Register/DeregisterTargets for IP targets (recorded: target group, targets)."""
    host = environ.get("HTTP_HOST", "")
    form = urllib.parse.parse_qs(body.decode(errors="replace"))
    action = form.get("Action", [""])[0]
    if host.startswith("autoscaling.") and action == "CompleteLifecycleAction":
        xml = ('<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
               "<CompleteLifecycleActionResult/><ResponseMetadata><RequestId>sandbox</RequestId>"
               "</ResponseMetadata></CompleteLifecycleActionResponse>")
        return xml.encode(), {"lifecycle": {k: form.get(k, [""])[0] for k in LIFECYCLE_FIELDS}}
    if host.startswith("elasticloadbalancing.") and action in ("RegisterTargets", "DeregisterTargets"):
        xml = (f'<{action}Response xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
               f"<{action}Result/><ResponseMetadata><RequestId>sandbox</RequestId></ResponseMetadata>"
               f"</{action}Response>")
        return xml.encode(), {"target_group": form.get("TargetGroupArn", [""])[0],
                              "targets": [[form.get(f"Targets.member.{i}.Id", [""])[0],
                                           form.get(f"Targets.member.{i}.Port", [""])[0]]
                                          for i in range(1, 1 + sum(k.endswith(".Id") for k in form))]}
    if host.startswith("ec2.") and action == "DescribeTags":
        filters = {form[k][0]: form.get(k.replace(".Name", ".Value.1"), [""])[0]
                   for k in form if k.startswith("Filter.") and k.endswith(".Name")}
        items = ""
        if filters.get("key") == "aws:autoscaling:groupName" and args.group_name:
            items = (f"<item><resourceId>{filters.get('resource-id', '')}</resourceId><resourceType>instance"
                     f"</resourceType><key>aws:autoscaling:groupName</key><value>{args.group_name}</value></item>")
        xml = ('<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
               f"<requestId>sandbox</requestId><tagSet>{items}</tagSet></DescribeTagsResponse>")
        return xml.encode(), {"filters": filters}
    return None


ACM_RENEWAL_PATH = "/sandbox/acm-renewal"


def _acm_renewal(body: bytes) -> tuple[bytes, dict]:
    """ACM's managed renewal, which moto 5.2 lacks: the certificate at the ARN posted gets a new
    key and certificate, its ARN and options kept; answers the new serial."""
    from moto.acm.models import CertBundle, acm_backends

    arn = json.loads(body)["CertificateArn"]
    region, account = arn.split(":")[3:5]
    bundle = acm_backends[account][region].get_certificate(arn)
    fresh = CertBundle.generate_cert(bundle.common_name, account_id=account, region=region, sans=bundle.sans)
    bundle.cert, bundle.key, bundle._cert, bundle._key = fresh.cert, fresh.key, fresh._cert, fresh._key
    return json.dumps({"Serial": str(fresh._cert.serial_number)}).encode(), {"renewed": arn}


def _access_key(authorization: str) -> str:
    # "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-3/ssm/aws4_request, ..."
    if "Credential=" not in authorization:
        return ""
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


# -- static files ----------------------------------------------------------------------

def sigv4_problem(method: str, headers, path: str, secret_key: str, token: str) -> str:  # noqa: ANN001
    """Why an S3 request's Signature Version 4 is not valid for this secret key ("" when it
    is): botocore's own signer recomputes it from the headers the request says it signed."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = headers.get("Authorization", "")
    fields = dict(part.strip().split("=", 1) for part in auth.removeprefix("AWS4-HMAC-SHA256 ").split(",")
                  if "=" in part)
    if not auth.startswith("AWS4-HMAC-SHA256 ") or not {"Credential", "SignedHeaders", "Signature"} <= set(fields):
        return "no SigV4 Authorization header"
    signed = fields["SignedHeaders"].split(";")
    for required in ("host", "x-amz-content-sha256", "x-amz-date"):
        if required not in signed:
            return f"{required} not signed"
    if headers.get("x-amz-security-token") != token or "x-amz-security-token" not in signed:
        return "the session token is missing, wrong or not signed"
    key_id, date, region, service, _ = fields["Credential"].split("/")
    request = AWSRequest(method=method, url=f"https://{headers['Host']}{path}",
                         headers={name: headers[name] for name in signed if name != "host"})
    request.context["timestamp"] = headers["x-amz-date"]
    signer = S3SigV4Auth(Credentials(key_id, secret_key, token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if service != "s3" or date != headers["x-amz-date"][:8] or fields["Signature"] != expected:
        return "SignatureDoesNotMatch"
    return ""


def files(args: argparse.Namespace) -> None:
    roots = [Path(r).resolve() for r in args.root]
    pool = Path(args.pool_dir).resolve() if args.pool_dir else None

    class Handler(BaseHTTPRequestHandler):
        server_version = "stun-infra-sandbox"

        def log_message(self, *a: object) -> None:
            pass

        def _find(self) -> Path | None:
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            if ".." in path.split("/"):
                return None
            candidates = [pool / path.rsplit("/", 1)[1]] if pool and "/pool/" in path and path.endswith(".deb") else []
            candidates += [root / path.lstrip("/") for root in roots]
            return next((c for c in candidates if c.is_file()), None)

        def _fault(self) -> str:
            """What goes wrong with this request: "" (nothing), "truncate" (the whole
            length announced, half the body sent, connection closed) or "unavailable" (503);
            a fault with "times" applies to that many requests, then the file is served."""
            if not Path(args.faults).is_file():
                return ""
            with _log_lock:
                faults = json.loads(Path(args.faults).read_text() or "{}")
                fault = faults.get(self.path.split("?", 1)[0])
                if not fault:
                    return ""
                if "times" in fault:
                    if fault["times"] <= 0:
                        return ""
                    fault["times"] -= 1
                    Path(args.faults).write_text(json.dumps(faults))
                return fault["kind"]

        def _signature_problem(self) -> str:
            if self.headers.get("Host", "") != args.signed_host:
                return ""
            return sigv4_problem(self.command, self.headers, self.path, args.signing_secret, args.signing_token)

        def _send(self, body: bool) -> None:
            unsigned = self._signature_problem()
            found = None if unsigned else self._find()
            fault = self._fault() if found else ""
            status = 403 if unsigned else 503 if fault == "unavailable" else 200 if found else 404
            data = found.read_bytes() if found and status == 200 else b"not found\n" if not found else b"busy\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if body:
                self.wfile.write(data[:len(data) // 2] if fault == "truncate" else data)
            if fault == "truncate":
                self.close_connection = True
            _log(args.log, method=self.command, host=self.headers.get("Host", ""), path=self.path,
                 status=status, bytes=len(data), fault=fault, signature_problem=unsigned,
                 access_key=_access_key(self.headers.get("Authorization", "")))

        def do_GET(self) -> None:
            self._send(True)

        def do_HEAD(self) -> None:
            self._send(False)

    _serve(ThreadingHTTPServer((args.bind, 80), Handler))
    if args.tls:
        _serve(ThreadingHTTPServer((args.bind, 443), Handler), (args.cert, args.key))
    _ready()


def _ready() -> None:
    print("ready", flush=True)
    threading.Event().wait()  # until killed


def main(argv: list[str]) -> None:
    """`standin_servers.py KIND CONFIG.json`: CONFIG holds the stand-in's settings (standins.py)."""
    kind, config = argv
    {"imds": imds, "ssm": ssm, "files": files}[kind](argparse.Namespace(**json.loads(Path(config).read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
