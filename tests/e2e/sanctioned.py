"""A registration whose name is an OFAC SDN individual's, spelled differently.

OFAC lists "PRIGOZHIN, Yevgeniy Viktorovich" (DOB 01 Jun 1961; in the committed extract). The
trader writes "Evgeny Prigozhin" (another transliteration of Евгений), born in another year:
close enough to need a compliance officer, not certain enough to reject outright.
"""

from __future__ import annotations

SANCTIONED = {
    "first_name": "Evgeny",
    "last_name": "Prigozhin",
    "date_of_birth": "1965-06-01",
    "country": "RU",
    "phone": "+79161234567",
}
