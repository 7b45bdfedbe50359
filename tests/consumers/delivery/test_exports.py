"""The public surface of the delivery package is complete and importable."""

from __future__ import annotations

import consumers.delivery as delivery


def test_every_export_exists_and_public_classes_are_exported() -> None:
    for name in delivery.__all__:
        assert hasattr(delivery, name), name
    assert sorted(delivery.__all__) == delivery.__all__
    for name in ("DeliveryEngine", "LedgerStore", "TargetKind", "Sender", "RetryPolicy"):
        assert name in delivery.__all__
