"""Container labels turned into targets: what each label sets, and a bad label named."""

from __future__ import annotations

from typing import Any

import pytest

from vigild.config import BUILTIN_THRESHOLDS
from vigild.config_sections import ContainerDiscoveryConfig
from vigild.discovery import Container, LabelError, targets_of

SETTINGS = ContainerDiscoveryConfig(engine="unix:///run/test.sock")


def container(labels: dict[str, str], **settings: Any) -> Container:
    values: dict[str, Any] = {
        "id": "c0ffee" * 10,
        "name": "web-1",
        "labels": {"vigild.enable": "true", **labels},
        "ip": "172.18.0.5",
        "ports": {8080: 49153},
        "first_port": 8080,
    }
    values.update(settings)
    return Container(**values)


def found(labels: dict[str, str], **settings: Any) -> dict[str, Any]:
    return {
        t.config.name: t.config.model_dump(exclude_defaults=True) | {"rules": t.rules}
        for t in targets_of(container(labels, **settings), SETTINGS, BUILTIN_THRESHOLDS)
    }


def test_an_enabled_container_is_a_container_target_named_by_its_compose_service() -> None:
    [(name, target)] = found({"com.docker.compose.service": "web"}).items()
    assert name == "web"
    assert target["container"] == "web-1"
    assert target["engine"] == "unix:///run/test.sock"
    assert set(target["rules"]) >= {"up", "memory_percent", "cpu_percent"}


def test_without_a_compose_service_the_container_name_is_the_target_name() -> None:
    assert list(found({})) == ["web-1"]
    assert list(found({"vigild.name": "shop", "com.docker.compose.service": "web"})) == ["shop"]


def test_an_http_url_adds_a_target_that_depends_on_the_container() -> None:
    targets = found({"vigild.http.url": "http://{ip}:{port:8080}/health"})
    assert targets["web-1/http"]["url"] == "http://172.18.0.5:49153/health"
    assert targets["web-1/http"]["depends_on"] == ["web-1"]


def test_the_http_shorthand_makes_the_url_from_the_address_and_a_port() -> None:
    assert found({"vigild.http.path": "/ok"})["web-1/http"]["url"] == "http://172.18.0.5:8080/ok"
    shorthand = {"vigild.http.port": "9000", "vigild.http.path": "/"}
    assert found(shorthand)["web-1/http"]["url"] == "http://172.18.0.5:9000/"


def test_keys_labels_and_thresholds_go_to_the_target_that_reports_them() -> None:
    targets = found(
        {
            "vigild.interval": "10s",
            "vigild.timeout": "2s",
            "vigild.depends_on": "db, cache",
            "vigild.labels.team": "shop",
            "vigild.thresholds.memory_percent.critical": "90",
            "vigild.thresholds.latency_seconds.warning": "0.5",
            "vigild.http.url": "http://{ip}:8080/",
        }
    )
    box, web = targets["web-1"], targets["web-1/http"]
    assert (box["interval"], box["timeout"]) == (10.0, 2.0)
    assert box["depends_on"] == ["db", "cache"]
    assert box["labels"] == web["labels"] == {"team": "shop"}
    assert box["thresholds"]["memory_percent"]["critical"] == 90.0
    assert box["rules"]["memory_percent"].critical == 90.0
    assert web["thresholds"]["latency_seconds"]["warning"] == 0.5


@pytest.mark.parametrize(
    ("labels", "label"),
    [
        ({"vigild.interval": "often"}, "vigild.interval"),
        (
            {"vigild.thresholds.memory_percent.critical": "lots"},
            "vigild.thresholds.memory_percent.critical",
        ),
        (
            {"vigild.thresholds.disk_percent.critical": "90"},
            "vigild.thresholds.disk_percent.critical",
        ),
        ({"vigild.thresholds.memory_percent.loud": "90"}, "vigild.thresholds.memory_percent.loud"),
        ({"vigild.thresholds.memory_percent": "90"}, "vigild.thresholds.memory_percent"),
        ({"vigild.http.url": "http://{ip}:{port:9999}/"}, "vigild.http.url"),
        ({"vigild.http.url": "ftp://{ip}/"}, "vigild.http.url"),
        ({"vigild.http.port": "http"}, "vigild.http.port"),
        ({"vigild.intreval": "10s"}, "vigild.intreval"),
    ],
)
def test_a_bad_label_is_named(labels: dict[str, str], label: str) -> None:
    with pytest.raises(LabelError) as caught:
        found(labels)
    assert caught.value.label == label
    assert caught.value.reason


def test_ip_placeholder_without_a_network_is_a_bad_label() -> None:
    with pytest.raises(LabelError, match="no address"):
        found({"vigild.http.url": "http://{ip}/"}, ip=None)


@pytest.mark.parametrize("flavour", ["docker", "podman"])
def test_a_listing_gives_name_address_and_published_ports(flavour: str) -> None:
    item: dict[str, Any] = {
        "Id": "ab" * 32,
        "Names": ["/web-1"],
        "Labels": {"vigild.enable": "true"},
        "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 49153, "Type": "tcp"},
            {"PrivatePort": 9090, "Type": "tcp"},
            {"PrivatePort": 53, "PublicPort": 53, "Type": "udp"},
        ],
        "NetworkSettings": {"Networks": {"front": {"IPAddress": "172.18.0.5"}}},
    }
    if flavour == "podman":
        item.update(Name="", Config=None, SizeRw=0)
    seen = Container.from_listing(item)
    assert (seen.name, seen.ip, seen.first_port) == ("web-1", "172.18.0.5", 8080)
    assert seen.ports == {8080: 49153}


def test_a_listing_without_networks_has_no_address() -> None:
    seen = Container.from_listing({"Id": "ab" * 32, "Names": ["/x"], "NetworkSettings": None})
    assert seen.ip is None
    assert seen.labels == {}
