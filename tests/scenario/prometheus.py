"""Reading `/metrics` as Prometheus does: samples by name and labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` (exactly those labels), None when it is not there."""
    return samples(text).get((name, frozenset(labels.items())))


def label_values(text: str, name: str, label: str) -> set[str]:
    """Every value `label` takes in the samples of `name`."""
    return {dict(key[1])[label] for key in samples(text) if key[0] == name}
