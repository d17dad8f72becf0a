"""The RFC 4475 corpus and the answers a UAS built on the core must give to each message."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"

# Statuses a UAS may answer with, per message, as the RFC and MANIFEST.tsv allow.
# None means "send nothing" (responses are never answered; broken responses are dropped).
# 200 stands for "processed normally" (180/200 for an INVITE at the test UAS).
EXPECTED: dict[str, set[int | None]] = {
    "wsinv": {200}, "intmeth": {501}, "esc01": {200}, "escnull": {200}, "esc02": {501},
    "lwsdisp": {200}, "longreq": {200}, "dblreq": {200}, "semiuri": {200},
    "transports": {200}, "mpart01": {200, 405}, "unreason": {None}, "noreason": {None},
    "badinv01": {400}, "clerr": {400}, "ncl": {400}, "scalar02": {400}, "scalarlg": {None},
    "quotbal": {400}, "ltgtruri": {400}, "lwsruri": {400}, "lwsstart": {400}, "trws": {400},
    "escruri": {400}, "baddate": {200, 400}, "regbadct": {400}, "badaspec": {400},
    "baddn": {400}, "badvers": {505}, "mismatch01": {400}, "mismatch02": {501, 400},
    "bigcode": {None}, "badbranch": {400}, "insuf": {400}, "unkscm": {416},
    "novelsc": {416, 404}, "unksm2": {400}, "bext01": {420}, "invut": {415},
    "regaut01": {200, 401, 405}, "multi01": {400}, "mcl01": {400}, "bcast": {None},
    "zeromf": {200, 483}, "cparam01": {200}, "cparam02": {200}, "regescrt": {200},
    "sdp01": {406, 400}, "inv2543": {200},
}


@dataclass(frozen=True)
class TortureCase:
    name: str
    section: str
    category: str
    expected_behaviour: str

    @property
    def data(self) -> bytes:
        return (CORPUS / f"{self.name}.dat").read_bytes()


def load_manifest() -> list[TortureCase]:
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        TortureCase(r["name"], r["rfc_section"], r["category"], r["expected_behaviour"])
        for r in rows
    ]


def corpus_messages() -> list[bytes]:
    return [p.read_bytes() for p in sorted(CORPUS.glob("*.dat"))]
