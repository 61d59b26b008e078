"""Object ids: OpenAI's shapes, an even spread over the alphabet, creation order for sortable ids."""

from __future__ import annotations

import string
from collections import Counter

from homeport.ids import new_id, sortable_id

ALPHABET = set(string.digits + string.ascii_letters)


def test_ids_have_the_prefix_the_length_and_only_base62_characters() -> None:
    for _ in range(200):
        a, b = new_id("resp_"), sortable_id("file-")
        assert a.startswith("resp_") and len(a) == 5 + 29 and set(a[5:]) <= ALPHABET
        assert b.startswith("file-") and len(b) == 5 + 24 and set(b[5:]) <= ALPHABET
    assert len(new_id("", 1000)) == 1000  # longer than one draw of random bytes
    assert len({new_id("x") for _ in range(1000)}) == 1000


def test_every_character_is_equally_likely() -> None:
    counts = Counter("".join(new_id("", 100) for _ in range(6200)))  # 620,000 characters, 10,000 expected each
    assert set(counts) == ALPHABET
    chi2 = sum((n - 10_000) ** 2 / 10_000 for n in counts.values())
    # 61 degrees of freedom: an even spread passes but for a chance under 1e-8. Random bytes taken
    # modulo 62 without dropping 248..255 (8 characters 25% likelier) score about 5,000.
    assert chi2 < 150


def test_sortable_ids_list_in_creation_order() -> None:
    ids = [sortable_id("vs_") for _ in range(500)]
    assert all(a[:13] <= b[:13] for a, b in zip(ids, ids[1:], strict=False))  # the prefix and the time
