"""torchvision's SVHN without the per-load md5 pass (kept in its own module so the class is
importable by name, which DataLoader workers need, without importing torchvision at registration)."""

from pathlib import Path

from torchvision.datasets import SVHN


class SVHNFiles(SVHN):
    # torchvision re-hashes the whole .mat (182 MB for train) on every load; we check existence.
    def _check_integrity(self) -> bool:
        return (Path(self.root) / self.filename).is_file()
