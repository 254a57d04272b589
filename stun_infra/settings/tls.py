"""The TLS plan: which ports `turns:` uses, where the certificate comes from, where TLS ends
and which name it carries. Decided once from the settings; the cloud, the instance and the
client sides read this object instead of deriving it again."""

from __future__ import annotations

from dataclasses import dataclass

from stun_infra.common.certificates import certificate_host

HTTPS_PORT, TURNS_PORT = 443, 5349


def client_ports_of(configured: tuple[int, ...], trusted: bool) -> tuple[int, ...]:
    """The TLS ports clients use: `tlsPorts`, or by default 443 and 5349 with a trusted
    certificate (443 passes firewalls that allow only HTTPS) and 5349 alone without."""
    if configured:
        return configured
    return (HTTPS_PORT, TURNS_PORT) if trusted else (TURNS_PORT,)


@dataclass(frozen=True)
class TlsPlan:
    source: str                       # "acm", "user" or "self-signed"
    autoscale: bool
    ports: tuple[int, ...]            # the ports `turns:` clients use, the first preferred
    host: str                         # the name `turns:` URIs carry, "" when only addresses are known

    @property
    def acm(self) -> bool:
        """The certificate comes from ACM, validated in the stack's Route 53 zone."""
        return self.source == "acm"

    @property
    def user(self) -> bool:
        """The user's own certificate and key (tlsCertificate, tlsPrivateKey)."""
        return self.source == "user"

    @property
    def trusted(self) -> bool:
        """A certificate browsers can trust: ACM's, or the user's own (not the self-signed default)."""
        return self.source != "self-signed"

    @property
    def ends_at_load_balancer(self) -> bool:
        """Autoscale with ACM: the NLB ends TLS and coturn serves TURN over TCP only."""
        return self.autoscale and self.acm

    @property
    def acm_export(self) -> bool:
        """Static with ACM: each instance exports the certificate for coturn."""
        return self.acm and not self.autoscale

    @property
    def coturn_port(self) -> int:
        """The one TLS port coturn listens on (4.6.1 opens its alternative TLS port only with
        two listening addresses); the other `ports` are redirected to it by nftables."""
        return self.ports[0]

    @property
    def coturn_ports(self) -> tuple[int, ...]:
        """The TLS ports coturn itself serves: none when the load balancer ends TLS."""
        return () if self.ends_at_load_balancer else (self.coturn_port,)

    @property
    def instance_ports(self) -> tuple[int, ...]:
        """TLS ports clients reach on the instances themselves: every one in static mode; in
        autoscale mode the NLB maps its ports to coturn's one (passthrough) or ends TLS."""
        if self.ends_at_load_balancer:
            return ()
        return (self.coturn_port,) if self.autoscale else self.ports


def plan_tls(*, autoscale: bool, configured_ports: tuple[int, ...], certificate: str, zone_id: str,
             dns_name: str) -> TlsPlan:
    """The plan for these settings: the user's certificate wins, else ACM with a zone, else self-signed."""
    source = "user" if certificate else "acm" if zone_id else "self-signed"
    host = dns_name or (certificate_host(certificate) if certificate else "")
    return TlsPlan(source=source, autoscale=autoscale, host=host,
                   ports=client_ports_of(configured_ports, source != "self-signed"))
