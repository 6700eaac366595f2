"""Country names as written in OFAC and UN lists -> ISO 3166-1 alpha-2.

Unknown names are returned unchanged by `to_iso2` (the scorer ignores values that are not ISO2
codes), so a new spelling in a list never breaks loading.
"""

from __future__ import annotations

import re

from anyascii import anyascii

# One line per code: "XX|name|variant|...". Variants cover OFAC ("Korea, North", "Burma"),
# UN ("Iran (Islamic Republic of)", "Democratic People's Republic of Korea") and common spellings.
_TABLE = """
AF|Afghanistan
AL|Albania
DZ|Algeria
AD|Andorra
AO|Angola
AG|Antigua and Barbuda
AR|Argentina
AM|Armenia
AW|Aruba
AU|Australia
AT|Austria
AZ|Azerbaijan
BS|Bahamas|Bahamas, The|The Bahamas
BH|Bahrain
BD|Bangladesh
BB|Barbados
BY|Belarus
BE|Belgium
BZ|Belize
BJ|Benin
BT|Bhutan
BO|Bolivia|Bolivia (Plurinational State of)|Plurinational State of Bolivia
BA|Bosnia and Herzegovina|Bosnia-Herzegovina
BW|Botswana
BR|Brazil
BN|Brunei|Brunei Darussalam
BG|Bulgaria
BF|Burkina Faso
MM|Burma|Myanmar
BI|Burundi
CV|Cabo Verde|Cape Verde
KH|Cambodia
CM|Cameroon
CA|Canada
KY|Cayman Islands
CF|Central African Republic
TD|Chad
CL|Chile
CN|China|People's Republic of China
CO|Colombia
KM|Comoros
CD|Congo, Democratic Republic of the|Democratic Republic of the Congo|DRC|Congo-Kinshasa
CG|Congo, Republic of the|Republic of the Congo|Congo|Congo-Brazzaville
CR|Costa Rica
CI|Cote d Ivoire|Cote d'Ivoire|Ivory Coast
HR|Croatia
CU|Cuba
CW|Curacao
CY|Cyprus
CZ|Czech Republic|Czechia
DK|Denmark
DJ|Djibouti
DM|Dominica
DO|Dominican Republic
EC|Ecuador
EG|Egypt
SV|El Salvador
GQ|Equatorial Guinea
ER|Eritrea
EE|Estonia
SZ|Eswatini|Swaziland
ET|Ethiopia
FJ|Fiji
FI|Finland
FR|France
GA|Gabon
GM|Gambia|The Gambia|Gambia, The
GE|Georgia
DE|Germany
GH|Ghana
GI|Gibraltar
GR|Greece
GD|Grenada
GT|Guatemala
GG|Guernsey
GN|Guinea
GW|Guinea-Bissau
GY|Guyana
HT|Haiti
HN|Honduras
HK|Hong Kong
HU|Hungary
IS|Iceland
IN|India
ID|Indonesia
IR|Iran|Iran (Islamic Republic of)|Islamic Republic of Iran
IQ|Iraq
IE|Ireland
IM|Isle of Man|Man, Isle of
IL|Israel
IT|Italy
JM|Jamaica
JP|Japan
JE|Jersey
JO|Jordan
KZ|Kazakhstan
KE|Kenya
KI|Kiribati
KP|Korea, North|North Korea|Democratic People's Republic of Korea|DPRK
KR|Korea, South|South Korea|Republic of Korea
XK|Kosovo
KW|Kuwait
KG|Kyrgyzstan
LA|Laos|Lao People's Democratic Republic
LV|Latvia
LB|Lebanon
LS|Lesotho
LR|Liberia
LY|Libya|Libyan Arab Jamahiriya
LI|Liechtenstein
LT|Lithuania
LU|Luxembourg
MO|Macau|Macao
MK|North Macedonia|Macedonia|Macedonia, The Former Yugoslav Republic of|The former Yugoslav Republic of Macedonia
MG|Madagascar
MW|Malawi
MY|Malaysia
MV|Maldives
ML|Mali|Region: Northern Mali
MT|Malta
MH|Marshall Islands
MR|Mauritania
MU|Mauritius
MX|Mexico
FM|Micronesia|Micronesia, Federated States of
MD|Moldova|Republic of Moldova
MC|Monaco
MN|Mongolia
ME|Montenegro
MA|Morocco
MZ|Mozambique
NA|Namibia
NR|Nauru
NP|Nepal
NL|Netherlands|The Netherlands
AN|Netherlands Antilles
NZ|New Zealand
NI|Nicaragua
NE|Niger
NG|Nigeria
NO|Norway
OM|Oman
PK|Pakistan
PW|Palau
PS|Palestinian|Palestine|State of Palestine|West Bank|Gaza|Region: Gaza|Occupied Palestinian Territory
PA|Panama
PG|Papua New Guinea
PY|Paraguay
PE|Peru
PH|Philippines
PL|Poland
PT|Portugal
PR|Puerto Rico
QA|Qatar
RO|Romania
RU|Russia|Russian Federation
RW|Rwanda
KN|Saint Kitts and Nevis|St. Kitts and Nevis
LC|Saint Lucia
VC|Saint Vincent and the Grenadines|St. Vincent and the Grenadines
WS|Samoa
SM|San Marino
ST|Sao Tome and Principe
SA|Saudi Arabia
SN|Senegal
RS|Serbia
SC|Seychelles
SL|Sierra Leone
SG|Singapore
SK|Slovakia
SI|Slovenia
SB|Solomon Islands
SO|Somalia
ZA|South Africa
SS|South Sudan
ES|Spain
LK|Sri Lanka
SD|Sudan
SR|Suriname
SE|Sweden
CH|Switzerland
SY|Syria|Syrian Arab Republic
TW|Taiwan
TJ|Tajikistan
TZ|Tanzania|United Republic of Tanzania
TH|Thailand
TL|Timor-Leste|East Timor
TG|Togo
TO|Tonga
TT|Trinidad and Tobago
TN|Tunisia
TR|Turkey|Turkiye
TM|Turkmenistan
TV|Tuvalu
UG|Uganda
UA|Ukraine|Region: Crimea|Crimea
AE|United Arab Emirates|UAE
GB|United Kingdom|United Kingdom of Great Britain and Northern Ireland|UK|Great Britain
US|United States|United States of America|USA
UY|Uruguay
UZ|Uzbekistan
VU|Vanuatu
VA|Holy See|Vatican City
VE|Venezuela|Venezuela (Bolivarian Republic of)|Bolivarian Republic of Venezuela
VN|Vietnam|Viet Nam
VG|Virgin Islands, British|British Virgin Islands
YE|Yemen
ZM|Zambia
ZW|Zimbabwe
SU|Soviet Union|USSR|Union of Soviet Socialist Republics
YU|Yugoslavia
CS|Serbia and Montenegro
"""


def _key(name: str) -> str:
    text = anyascii(name).casefold().replace("&", " and ")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(w for w in text.split() if w != "the")


COUNTRY_CODES: dict[str, str] = {}
for _line in _TABLE.strip().splitlines():
    _code, *_names = _line.split("|")
    for _name in _names:
        COUNTRY_CODES[_key(_name)] = _code
ISO2_CODES = frozenset(COUNTRY_CODES.values())


def to_iso2(name: str) -> str:
    """ISO2 code for a country name or code; the cleaned raw name when unknown."""
    cleaned = name.strip().strip(".").strip()
    if len(cleaned) == 2 and cleaned.upper() in ISO2_CODES:
        return cleaned.upper()
    return COUNTRY_CODES.get(_key(cleaned), cleaned)
