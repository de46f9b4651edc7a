"""SYNTHETIC TEST FIXTURES (not data): small files in the exact layouts the producers
publish, for the Data Territoria themes (geo.themes). No figure is claimed from them.

Every value is invented; the layouts (file container, zip members, separator, encoding,
column names and order, code formats) follow the sources named in each function, which
the closing note of issue 15 lists. Commune codes are real so that the COG 2026 re-keying
is exercised: 01340 (Saint-Bois) is now part of 01015 (Arboys en Bugey), 01126
(Bellegarde-sur-Valserine) part of 01033 (Valserhône), 75101/75102 are arrondissements of
Paris (75056); 01306 is Pont-de-Veyle (a PVD town), 01004 Ambérieu-en-Bugey.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pandas as pd

# --- Urssaf: open.urssaf.fr export of etablissements-et-effectifs-salaries-au-niveau-
# commune-x-ape-last, field names (use_labels=false), ';'. Columns as in public dbt models
# of this export (region ... code_ape, then nombre_d_etablissements_<yyyy> /
# effectifs_salaries_<yyyy> per year).
URSSAF_HEAD = ["region", "ancienne_region", "departement", "zone_d_emploi", "epci", "commune",
               "intitule_commune", "grand_secteur_d_activite", "secteur_na17", "secteur_na38",
               "secteur_na88", "ape", "code_region", "code_ancienne_region",
               "code_departement", "code_zone_d_emploi", "code_epci", "code_commune",
               "code_ape"]
URSSAF_YEARS = list(range(2012, 2025))


def urssaf_rows() -> list[dict[str, object]]:
    """(commune, sector, APE) rows with jobs by year: ``jobs(year)`` is linear in the
    year so the tests can recompute any year."""
    spec = [  # code, name, sector, ape, jobs 2014, jobs 2024, establishments
        ("01306", "Pont-de-Veyle", "GS1 Industrie", "1071C", 20, 30, 2),
        ("01306", "Pont-de-Veyle", "GS3 Commerce", "4711D", 40, 50, 5),
        ("01306", "Pont-de-Veyle", "GS3 Commerce", "4724Z", 10, 0, 1),
        ("01015", "Arboys en Bugey", "GS2 Construction", "4399C", 5, 7, 1),
        ("01340", "Saint-Bois", "GS1 Industrie", "2511Z", 15, 9, 1),  # merged into 01015
        ("01033", "Valserhône", "GS4 Services", "8610Z", 300, 360, 4),
        ("01126", "Bellegarde-sur-Valserine", "GS1 Industrie", "2910Z", 100, 80, 1),
        ("75101", "Paris 1er Arrondissement", "GS4 Services", "6201Z", 1000, 1200, 10),
        ("75102", "Paris 2e Arrondissement", "GS4 Services", "6201Z", 500, 700, 8),
    ]
    rows = []
    for code, name, sector, ape, j14, j24, etab in spec:
        row: dict[str, object] = dict.fromkeys(URSSAF_HEAD, "")
        row.update({"region": "Auvergne-Rhône-Alpes" if code < "70000" else "Île-de-France",
                    "commune": name, "intitule_commune": f"{code} {name}",
                    "grand_secteur_d_activite": sector, "ape": f"{ape} Libellé",
                    "code_departement": code[:2], "code_commune": code, "code_ape": ape})
        for y in URSSAF_YEARS:
            jobs = j14 + (j24 - j14) * (y - 2014) / 10
            row[f"nombre_d_etablissements_{y}"] = etab
            row[f"effectifs_salaries_{y}"] = round(jobs, 1)
        rows.append(row)
    return rows


def write_urssaf(path: Path) -> Path:
    df = pd.DataFrame(urssaf_rows())
    df.to_csv(path, sep=";", index=False, encoding="utf-8")
    return path


# --- geo-dvf: files.data.gouv.fr/geo-dvf/<release>/csv/<year>/full.csv.gz, ',', UTF-8,
# the 40 columns of datagouv/dvf improve-csv.js (the script that writes the files).
DVF_HEAD = [
    "id_mutation", "date_mutation", "numero_disposition", "nature_mutation",
    "valeur_fonciere", "adresse_numero", "adresse_suffixe", "adresse_nom_voie",
    "adresse_code_voie", "code_postal", "code_commune", "nom_commune", "code_departement",
    "ancien_code_commune", "ancien_nom_commune", "id_parcelle", "ancien_id_parcelle",
    "numero_volume", "lot1_numero", "lot1_surface_carrez", "lot2_numero",
    "lot2_surface_carrez", "lot3_numero", "lot3_surface_carrez", "lot4_numero",
    "lot4_surface_carrez", "lot5_numero", "lot5_surface_carrez", "nombre_lots",
    "code_type_local", "type_local", "surface_reelle_bati", "nombre_pieces_principales",
    "code_nature_culture", "nature_culture", "code_nature_culture_speciale",
    "nature_culture_speciale", "surface_terrain", "longitude", "latitude",
]
_TYPES = {1: "Maison", 2: "Appartement", 3: "Dépendance",
          4: "Local industriel. commercial ou assimilé"}


def dvf_rows(year: int) -> list[dict[str, object]]:
    """Mutations of ``year``: single-good house sales in 01306 (prices per m² rising 10 %
    from 2021 to 2025), 3 apartments (too few for a median), a two-house sale, an
    exchange, a house with its garden (2 rows) and with a dependency, an exact duplicate
    row, and single sales in 01340 (now in 01015)."""
    k = 1.0 if year == 2021 else 1.1
    rows: list[dict[str, object]] = []
    seq = 0

    def add(code: str, nature: str, value: float, lines: list[tuple[int | None, float]],
            *, dup: bool = False) -> None:
        nonlocal seq
        seq += 1
        for i, (typ, surface) in enumerate(lines):
            row: dict[str, object] = dict.fromkeys(DVF_HEAD, "")
            row.update({
                "id_mutation": f"{year}-{seq}", "date_mutation": f"{year}-06-{seq % 28 + 1:02d}",
                "numero_disposition": "000001", "nature_mutation": nature,
                "valeur_fonciere": value, "code_postal": "01290", "code_commune": code,
                "nom_commune": "x", "code_departement": code[:2],
                "id_parcelle": f"{code}000AB{seq:04d}", "nombre_lots": 0,
                "code_type_local": "" if typ is None else typ,
                "type_local": "" if typ is None else _TYPES[typ],
                "surface_reelle_bati": "" if typ is None else surface,
                "code_nature_culture": "S" if typ is not None else "J",
                "nature_culture": "sols" if typ is not None else "jardins",
                "surface_terrain": 500 if i == 0 else "", "longitude": 4.89,
                "latitude": 46.26,
            })
            rows.append(row)
            if dup and i == 0:
                rows.append(dict(row))

    for price, surface in ((1500, 100), (1800, 90), (2000, 120), (2200, 80), (2500, 100),
                           (3000, 70)):
        add("01306", "Vente", price * k * surface, [(1, surface)])
    add("01306", "Vente", 2600 * k * 110, [(1, 110), (None, 0)], dup=True)  # + garden
    add("01306", "Vente", 1900 * k * 95, [(1, 95), (3, 0)])  # + a dependency
    add("01306", "Vente", 300_000, [(1, 100), (1, 80)])  # two houses: not a single good
    add("01306", "Echange", 200_000, [(1, 100)])  # not a sale
    for price in (2000, 2100, 2300):
        add("01306", "Vente", price * k * 50, [(2, 50)])
    for price in (1000, 1100, 1200, 1300, 1400):
        add("01340", "Vente en l'état futur d'achèvement", price * k * 100, [(1, 100)])
    return rows


def dvf_expected_house_prices(year: int) -> list[float]:
    """The prices per m² of the single-good house sales of 01306 in ``year``."""
    k = 1.0 if year == 2021 else 1.1
    return [p * k for p in (1500, 1800, 2000, 2200, 2500, 3000, 2600, 1900)]


def write_dvf(path: Path, year: int) -> Path:
    df = pd.DataFrame(dvf_rows(year), columns=DVF_HEAD)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False)
    return path


# --- INSEE MOBPRO: RP2017_mobpro_csv.zip holds FD_MOBPRO_2017.csv (';') and
# varmod_MOBPRO_2017.csv; RP2022_mobpro.parquet. Columns read by eqasim-org/ile-de-france
# (COMMUNE, ARM, DCLT, TRANS, IPONDI) among the file's variables.
MOBPRO_HEAD = ["COMMUNE", "ARM", "DCLT", "AGEREVQ", "CS1", "DIPL", "EMPL", "ILT", "INATC",
               "IPONDI", "METRODOM", "NA17", "REGION", "REGLT", "SEXE", "STAT", "TP",
               "TRANS", "TYPL", "VOIT"]


def mobpro_rows(year: int) -> list[dict[str, object]]:
    """Employed residents (weight, home, work, TRANS). In 2017 Pont-de-Veyle has 100
    residents: 40 work there (10 walk, 30 car), 60 elsewhere (50 car, 10 public
    transport); in 2022, 35 there (15 walk, 5 bike, 15 car), 65 elsewhere (50 car, 15
    public transport). A resident of 01340 works in 01015 (same current commune)."""
    flows = {
        2017: [("01306", "01306", "2", 10), ("01306", "01306", "5", 30),
               ("01306", "01053", "5", 50), ("01306", "69123", "6", 10),
               ("01340", "01015", "5", 8), ("01015", "01004", "5", 12),
               ("75056", "75108", "6", 900), ("75056", "92050", "6", 100)],
        2022: [("01306", "01306", "2", 15), ("01306", "01306", "3", 5),
               ("01306", "01306", "5", 15), ("01306", "01053", "5", 50),
               ("01306", "69123", "6", 15), ("01340", "01015", "5", 6),
               ("01015", "01004", "5", 14), ("75056", "75108", "6", 950),
               ("75056", "92050", "3", 50)],
    }[year]
    rows = []
    for home, work, trans, weight in flows:
        for part in (0.4, 0.6):  # two records per flow, as weighted individuals
            row: dict[str, object] = dict.fromkeys(MOBPRO_HEAD, "Z")
            row.update({"COMMUNE": home, "ARM": "75101" if home == "75056" else "ZZZZZ",
                        "DCLT": work, "TRANS": trans, "IPONDI": f"{weight * part:.7f}",
                        "ILT": "1" if home == work else "2", "SEXE": "1"})
            rows.append(row)
    return rows


def write_mobpro_zip(path: Path, year: int = 2017) -> Path:
    df = pd.DataFrame(mobpro_rows(year), columns=MOBPRO_HEAD)
    varmod = ("COD_VAR;LIB_VAR;COD_MOD;LIB_MOD;TYPE_VAR;LONG_VAR\n"
              + "\n".join(f"TRANS;Mode de transport;{c};{lab};CHAR;1" for c, lab in (
                  ("1", "Pas de transport"), ("2", "Marche à pied"), ("3", "Vélo"),
                  ("4", "Deux-roues motorisé"), ("5", "Voiture, camion, fourgonnette"),
                  ("6", "Transports en commun"))) * 40)  # bigger than the data: not picked
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"FD_MOBPRO_{year}.csv", df.to_csv(sep=";", index=False))
        zf.writestr(f"varmod_MOBPRO_{year}.csv", varmod.encode("cp1252"))
    return path


def write_mobpro_parquet(path: Path, year: int = 2022) -> Path:
    df = pd.DataFrame(mobpro_rows(year), columns=MOBPRO_HEAD)
    df["IPONDI"] = df["IPONDI"].astype(float)
    df.to_parquet(path, index=False)
    return path


# --- MESR atlas: fr-esr-atlas_regional-effectifs-d-etudiants-inscrits export, field names,
# ';' (fields as written by the ministry's own dataesr code, opendata_atlas).
ESR_HEAD = ["rentree", "annee_universitaire", "annee", "niveau_geo", "niveau_geographique",
            "regroupement", "rgp_formations_ou_etablissements", "secteur",
            "secteur_de_l_etablissement", "sexe", "sexe_de_l_etudiant", "effectif",
            "effectifhdccpge", "effectif_dut", "effectif_ing", "effectif_form_ens",
            "effectif_apprentis_en_sts", "geo_id", "geo_nom", "reg_id", "aca_id", "dep_id",
            "uucr_id", "pays"]


def esr_rows() -> list[dict[str, object]]:
    """Enrolments by rentrée 2018-2023: Pont-de-Veyle 40 -> 60 (a BTS), Valserhône
    (as 01033) 200 -> 180, Paris arrondissements 1000 + 500 -> 1200 + 600; each total split
    by sector and sex; a UNIV row and a département row that must not be added."""
    totals = {"01306": (40, 60), "01033": (200, 180), "75101": (1000, 1200),
              "75102": (500, 600)}
    rows = []
    for rentree in range(2018, 2024):
        for code, (a, b) in totals.items():
            total = a + (b - a) * (rentree - 2018) / 5
            for sect, sect_lab, share_s in (("PU", "Établissements publics", 0.75),
                                            ("PR", "Établissements privés", 0.25)):
                for sexe, sexe_lab, share_x in (("1", "Masculin", 0.4),
                                                ("2", "Feminin", 0.6)):
                    for rgp, lab, share_r in (("TOTAL", "Total des formations d'enseignement "
                                               "supérieur", 1.0), ("UNIV", "Universités", 0.5)):
                        row: dict[str, object] = dict.fromkeys(ESR_HEAD, "")
                        row.update({
                            "rentree": rentree,
                            "annee_universitaire": f"{rentree}-{(rentree + 1) % 100:02d}",
                            "annee": rentree + 1, "niveau_geo": "COMMUNE",
                            "niveau_geographique": "Commune", "regroupement": rgp,
                            "rgp_formations_ou_etablissements": lab, "secteur": sect,
                            "secteur_de_l_etablissement": sect_lab, "sexe": sexe,
                            "sexe_de_l_etudiant": sexe_lab,
                            "effectif": total * share_s * share_x * share_r,
                            "geo_id": code, "geo_nom": "x", "dep_id": f"D0{code[:2]}",
                            "pays": "France"})
                        rows.append(row)
        dep: dict[str, object] = dict.fromkeys(ESR_HEAD, "")
        dep.update({"rentree": rentree, "niveau_geo": "DEPARTEMENT",
                    "niveau_geographique": "Département", "regroupement": "TOTAL",
                    "effectif": 99999, "geo_id": "D001", "geo_nom": "Ain"})
        rows.append(dep)
    return rows


def write_esr(path: Path) -> Path:
    pd.DataFrame(esr_rows(), columns=ESR_HEAD).to_csv(path, sep=";", index=False)
    return path


# --- INSEE séries historiques: base-cc-serie-historique-2020_csv.zip holds
# base-cc-serie-historique-2020.CSV (';') and meta_base-cc-serie-historique-2020.CSV;
# columns CODGEO, P20_POP, P14_POP, P09_POP, D99_POP ... D68_POP, SUPERF,
# NAIS1420 ... NAIS6875, DECE1420 ... DECE6875, housing (P20_LOG...).
HIST_POPS = ["P20_POP", "P14_POP", "P09_POP", "D99_POP", "D90_POP", "D82_POP", "D75_POP",
             "D68_POP"]
HIST_PERIODS = ["1420", "0914", "9909", "9099", "8290", "7582", "6875"]


def hist_rows() -> list[dict[str, object]]:
    """Pont-de-Veyle: 1500 (2009), 1550 (2014), 1600 (2020); births/deaths 2014-2020
    120/90, 2009-2014 110/100. Saint-Bois is not in COG 2023 (merged in 2016) and must not
    appear; Valserhône with its 2019 code."""
    pops = {"01306": [1600, 1550, 1500, 1400, 1350, 1300, 1250, 1200],
            "01033": [16700, 16500, 16100, 15000, 14000, 13000, 12000, 11000],
            "01015": [700, 690, 680, 650, 600, 580, 560, 540]}
    births = {"01306": (120, 110), "01033": (1300, 1250), "01015": (40, 45)}
    deaths = {"01306": (90, 100), "01033": (900, 880), "01015": (50, 40)}
    rows = []
    for code, pop in pops.items():
        row: dict[str, object] = {"CODGEO": code}
        row.update(dict(zip(HIST_POPS, pop, strict=True)))
        row["SUPERF"] = "12,5"
        for i, per in enumerate(HIST_PERIODS):
            row[f"NAIS{per}"] = births[code][i] if i < 2 else 50
        for i, per in enumerate(HIST_PERIODS):
            row[f"DECE{per}"] = deaths[code][i] if i < 2 else 40
        row.update({"P20_LOG": 800, "P20_RP": 700, "P20_RSECOCC": 50, "P20_LOGVAC": 50})
        rows.append(row)
    return rows


def write_hist_zip(path: Path) -> Path:
    df = pd.DataFrame(hist_rows())
    meta = "COD_VAR;LIB_VAR;LIB_VAR_LONG\n" + "\n".join(
        f"{c};{c};libellé long de {c}" for c in df.columns) * 20
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("base-cc-serie-historique-2020.CSV", df.to_csv(sep=";", index=False))
        zf.writestr("meta_base-cc-serie-historique-2020.CSV", meta)
    return path


# --- ODRÉ register: registre-national-installation-production-stockage-electricite-agrege-
# 3112yy export (';'). 2025: the lower-case field names of the v2.1 API (as in public dbt
# models of the dataset); 2020: the camel case of older exports with decimal commas.
ODRE_FIELDS = [
    "nominstallation", "codeeicresourceobject", "codeiris", "codeinseecommune", "commune",
    "codeepci", "epci", "codedepartement", "departement", "coderegion", "region",
    "codeiriscommuneimplantation", "codeinseecommuneimplantation", "codes3renr",
    "dateraccordement", "datederaccordement", "datemiseenservice", "datedebutversion",
    "postesource", "tensionraccordement", "moderaccordement", "codefiliere", "filiere",
    "codecombustible", "combustible", "codescombustiblessecondaires",
    "combustiblessecondaires", "codetechnologie", "technologie", "typestockage",
    "puismaxinstallee", "puismaxraccharge", "puismaxcharge", "puismaxrac",
    "puismaxinstalleedischarge", "nbgroupes", "nbinstallations", "regime",
    "energiestockable", "capacitereservoir", "hauteurchute", "productible", "debitmaximal",
    "codegestionnaire", "gestionnaire", "energieannuelleglissanteinjectee",
    "energieannuelleglissanteproduite", "energieannuelleglissantesoutiree",
    "energieannuelleglissantestockee", "maxpuis",
]
ODRE_CAMEL = {"nominstallation": "nomInstallation", "codeinseecommune": "codeINSEECommune",
              "codefiliere": "codeFiliere", "puismaxinstallee": "puisMaxInstallee",
              "nbinstallations": "nbInstallations",
              "energieannuelleglissanteproduite": "energieAnnuelleGlissanteProduite",
              "codedepartement": "codeDepartement", "codeepci": "codeEPCI"}


def odre_rows(year: int) -> list[dict[str, object]]:
    """Pont-de-Veyle: small solar aggregated (kW), a wind farm from 2025; Saint-Bois (now
    01015) hydro; a gas plant (not renewable) and an installation out of service in
    01306."""
    k = 1.0 if year == 2020 else 2.0
    spec = [  # name, commune, code filière, filière, kW, n, kWh, regime
        ("Agrégation des installations de moins de 36KW", "01306", "SOLAI", "Solaire",
         50 * k, int(10 * k), 55_000 * k, "En service"),
        ("Centrale PV toiture", "01306", "SOLAI", "Solaire", 100.0, 1, 110_000.0,
         "En service"),
        ("Turbine gaz", "01306", "THERM", "Thermique non renouvelable", 5000.0, 1,
         9_000_000.0, "En service"),
        ("Projet arrêté", "01306", "SOLAI", "Solaire", 800.0, 1, 0.0, "Arrêt définitif"),
        ("Microcentrale", "01340", "HYDLQ", "Hydraulique", 300.0, 1, 1_200_000.0,
         "En service"),
        ("Confidentiel", "", "SOLAI", "Solaire", 40.0, 1, 40_000.0, "En service"),
    ]
    if year == 2025:
        spec.append(("Parc éolien", "01306", "EOLIE", "Eolien", 12_000.0, 1, 26_000_000.0,
                     "En service"))
    rows = []
    for name, code, cfil, fil, kw, n, kwh, regime in spec:
        row: dict[str, object] = dict.fromkeys(ODRE_FIELDS, "")
        row.update({"nominstallation": name, "codeinseecommune": code,
                    "codedepartement": code[:2], "codefiliere": cfil, "filiere": fil,
                    "puismaxinstallee": kw, "nbinstallations": n,
                    "energieannuelleglissanteproduite": kwh, "regime": regime,
                    "datemiseenservice": "2015-07-10"})
        rows.append(row)
    return rows


def write_odre(path: Path, year: int) -> Path:
    df = pd.DataFrame(odre_rows(year), columns=ODRE_FIELDS)
    if year == 2020:
        df = df.rename(columns=ODRE_CAMEL)
        for col in ("puisMaxInstallee", "energieAnnuelleGlissanteProduite"):
            df[col] = df[col].map(lambda v: f"{v:.2f}".replace(".", ","))
    df.to_csv(path, sep=";", index=False)
    return path


# --- Agence ORE: consommation-annuelle-d-electricite-et-gaz-par-commune (data-fair), field
# keys as read by public code of the dataset (annee, filiere, code_grand_secteur,
# conso_totale_mwh, nb_sites, code_commune...), ';'.
ORE_HEAD = ["operateur", "annee", "filiere", "code_categorie_consommation",
            "libelle_categorie_consommation", "code_grand_secteur", "libelle_grand_secteur",
            "code_secteur_naf2", "libelle_secteur_naf2", "conso_totale_mwh",
            "conso_moyenne_mwh", "nb_sites", "indqual", "nombre_de_mailles_secretisees",
            "code_commune", "libelle_commune", "code_epci", "libelle_epci",
            "code_departement", "libelle_departement", "code_region", "libelle_region"]


def ore_rows() -> list[dict[str, object]]:
    """2019 and 2024: Pont-de-Veyle electricity (residential 3000 -> 2700 MWh, tertiary
    1000 -> 1100), gas residential 2000 -> 1800; Saint-Bois (01340, 2019 only, now 01015)
    and 01015 electricity; Ambérieu (01004) electricity withheld (0) in 2024."""
    spec = [  # year, filiere, sector, MWh, sites, commune
        (2019, "Electricité", "RESIDENTIEL", 3000.0, 900, "01306"),
        (2019, "Electricité", "TERTIAIRE", 1000.0, 60, "01306"),
        (2019, "Gaz", "RESIDENTIEL", 2000.0, 300, "01306"),
        (2019, "Electricité", "RESIDENTIEL", 400.0, 150, "01340"),
        (2019, "Electricité", "RESIDENTIEL", 1000.0, 300, "01015"),
        (2019, "Electricité", "RESIDENTIEL", 30000.0, 8000, "01004"),
        (2024, "Electricité", "RESIDENTIEL", 2700.0, 920, "01306"),
        (2024, "Electricité", "TERTIAIRE", 1100.0, 62, "01306"),
        (2024, "Gaz", "RESIDENTIEL", 1800.0, 310, "01306"),
        (2024, "Electricité", "RESIDENTIEL", 1300.0, 460, "01015"),
        (2024, "Electricité", "RESIDENTIEL", 0.0, 8100, "01004"),
        (2022, "Electricité", "RESIDENTIEL", 2800.0, 910, "01306"),
    ]
    rows = []
    for year, fil, sector, mwh, sites, code in spec:
        row: dict[str, object] = dict.fromkeys(ORE_HEAD, "")
        row.update({"operateur": "ENEDIS" if fil == "Electricité" else "GRDF",
                    "annee": year, "filiere": fil,
                    "code_categorie_consommation": "RES" if sector == "RESIDENTIEL" else "PRO",
                    "code_grand_secteur": sector, "libelle_grand_secteur": sector.title(),
                    "conso_totale_mwh": mwh, "conso_moyenne_mwh": mwh / sites,
                    "nb_sites": sites, "code_commune": code, "code_departement": code[:2]})
        rows.append(row)
    return rows


def write_ore(path: Path) -> Path:
    pd.DataFrame(ore_rows(), columns=ORE_HEAD).to_csv(path, sep=";", index=False)
    return path


#: dataset id -> writer of its published file (the argument is the path to write).
WRITERS = {
    "urssaf_effectifs_communes": write_urssaf,
    "dvf_2021": lambda p: write_dvf(p, 2021),
    "dvf_2025": lambda p: write_dvf(p, 2025),
    "insee_mobpro_2017": lambda p: write_mobpro_zip(p, 2017),
    "insee_mobpro_2022": lambda p: write_mobpro_parquet(p, 2022),
    "esr_atlas_effectifs": write_esr,
    "insee_serie_historique_2020": write_hist_zip,
    "odre_registre_2020": lambda p: write_odre(p, 2020),
    "odre_registre_2025": lambda p: write_odre(p, 2025),
    "ore_consommation_communes": write_ore,
}


def published_bytes(dataset_id: str, folder: Path) -> bytes:
    """The published file of ``dataset_id`` as bytes (written once into ``folder``)."""
    path = WRITERS[dataset_id](folder / f"{dataset_id}.published")
    return Path(path).read_bytes()


__all__ = ["WRITERS", "dvf_expected_house_prices", "published_bytes"]

