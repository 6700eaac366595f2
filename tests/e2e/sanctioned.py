"""A registration whose name is an OFAC SDN individual's, spelled differently.

OFAC lists "KHRISTOFOROV, Vasiliy Aleksandrovich" (DOB 12 Mar 1972, nationality Russia). The
trader writes "Vasily Khristoforov" (another transliteration of Василий), born in a different year:
close enough to need a compliance officer, not certain enough to reject outright.
"""

from __future__ import annotations

SANCTIONED = {
    "first_name": "Vasily",
    "last_name": "Khristoforov",
    "date_of_birth": "1975-03-12",
    "country": "RU",
    "phone": "+79161234567",
}
