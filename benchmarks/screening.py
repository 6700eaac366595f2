"""Sanctions screening benchmark on the full OFAC SDN list (Jan 2022 CSV trio).

Prints: load + index build time, single-registration latency (p50/p95 over 500 realistic names),
the time to re-screen 100,000 synthetic clients with `screen_many` (about 0.5% of them perturbed
real list names), recall on those perturbed names, and peak RSS.

    uv run python benchmarks/screening.py [--clients 100000] [--workers 2] [--lists PATH ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import statistics
import time
from collections import Counter
from datetime import date
from pathlib import Path

from fxcrm.adapters.sanctions import load_lists
from fxcrm.domain.screening import ListEntity, Screener, ScreeningOutcome, ScreeningSubject

DEFAULT_LIST = Path(__file__).resolve().parents[1] / "../shared/data/sanctions/ofac-sdn-2022-01"


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words(
    """
James John Robert Michael William David Richard Joseph Thomas Charles Daniel Matthew Anthony Mark
Paul Steven Andrew Kevin Brian George Edward Jason Ryan Jacob Gary Nicholas Eric Jonathan Stephen
Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy Lisa Betty Margaret
Sandra Ashley Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Laura Sharon
Maria Jose Juan Carlos Luis Miguel Javier Ana Carmen Lucia Sofia Pablo Diego Alejandro Fernando
Giulia Marco Luca Francesca Alessandro Matteo Chiara Pierre Jean Marie Camille Louis Julien Claire
Hans Klaus Stefan Anna Lukas Felix Lena Jan Piotr Katarzyna Tomasz Agnieszka Marek Ewa
Ivan Dmitry Sergei Olga Natalia Alexei Tatiana Elena Mikhail Andrei Irina Svetlana Pavel Oleg
Wei Li Min Jun Hui Ying Hao Xin Lei Jing Hiroshi Yuki Kenji Akira Haruto Sakura Minjun Jiwoo
Ahmed Mohammed Ali Omar Fatima Aisha Hassan Yusuf Ibrahim Khalid Layla Mariam Karim Nadia Tariq
Raj Priya Amit Anjali Vikram Sunita Arjun Deepa Rahul Kavita Emeka Chinedu Ngozi Kwame Ama Kofi
"""
)

LAST_NAMES = _words(
    """
Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Jackson Martin
Lee Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Hill Green Adams
Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez Torres Flores Rivera Gomez
Diaz Cruz Morales Ortiz Gutierrez Ruiz Alvarez Romero Navarro Dominguez Vargas Castro Moreno
Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Dubois Lefebvre Moreau Laurent Simon Michel
Muller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Kowalski Nowak Wisniewski
Ivanov Smirnov Kuznetsov Popov Sokolov Lebedev Kozlov Novikov Morozov Petrov Volkov Fedorov
Wang Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sato Suzuki Takahashi Tanaka Watanabe Kim Park Choi
Khan Hussain Ahmed Rahman Malik Haddad Nasser Saleh Mansour Aziz Farouk Hamdan Yilmaz Kaya Demir
Patel Sharma Singh Kumar Gupta Reddy Iyer Nair Okafor Mensah Adeyemi Okonkwo Boateng Diallo
"""
)

COUNTRIES = _words(
    "GB DE FR ES IT PL NL SE AE SA EG IN PK NG ZA BR MX CO AR US CA AU JP CN KR RU UA TR CY MT"
)


def perturb(rng: random.Random, text: str) -> str:
    """One realistic spelling change: typo, transliteration drift or a dropped letter."""
    tokens = text.split()
    candidates = [i for i, t in enumerate(tokens) if len(t) >= 5]
    if not candidates:
        return text
    i = rng.choice(candidates)
    token = tokens[i]
    change = rng.randrange(4)
    pos = rng.randrange(1, len(token) - 1)
    if change == 0:  # substitution
        token = token[:pos] + rng.choice("aeiouy") + token[pos + 1 :]
    elif change == 1:  # deletion
        token = token[:pos] + token[pos + 1 :]
    elif change == 2:  # transposition
        token = token[: pos - 1] + token[pos] + token[pos - 1] + token[pos + 1 :]
    else:  # transliteration drift
        for old, new in (("y", "i"), ("ou", "u"), ("i", "y"), ("kh", "h"), ("e", "a")):
            if old in token.lower():
                token = token.lower().replace(old, new, 1).capitalize()
                break
    tokens[i] = token
    return " ".join(tokens)


def listed_subject(rng: random.Random, entity: ListEntity, ref: str) -> ScreeningSubject:
    """A client whose name is a perturbed listed name, in random order, with the listed DOB if any."""
    name = rng.choice(entity.names)
    given = perturb(rng, name.given or "") if name.given else ""
    family = perturb(rng, name.family or name.full)
    if rng.random() < 0.3:
        given, family = family, given  # reversed order
    dob = None
    exact = [bd for bd in entity.birth_dates if len(bd.prefix) == 10]
    if exact:
        dob = date.fromisoformat(rng.choice(exact).prefix)
    return ScreeningSubject(first_name=given, last_name=family, date_of_birth=dob, reference=ref)


def random_subject(rng: random.Random, ref: str) -> ScreeningSubject:
    return ScreeningSubject(
        first_name=rng.choice(FIRST_NAMES),
        middle_name=rng.choice(FIRST_NAMES) if rng.random() < 0.25 else None,
        last_name=rng.choice(LAST_NAMES),
        date_of_birth=date(rng.randint(1945, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        country=rng.choice(COUNTRIES),
        reference=ref,
    )


def make_clients(
    rng: random.Random, persons: list[ListEntity], count: int, listed_share: float
) -> tuple[list[ScreeningSubject], dict[str, str]]:
    """Synthetic clients; returns the subjects and reference -> listed entity id for planted ones."""
    subjects: list[ScreeningSubject] = []
    planted: dict[str, str] = {}
    for n in range(count):
        ref = f"c{n}"
        if rng.random() < listed_share:
            entity = rng.choice(persons)
            planted[ref] = entity.entity_id
            subjects.append(listed_subject(rng, entity, ref))
        else:
            subjects.append(random_subject(rng, ref))
    return subjects, planted


_SCREENER: Screener | None = None  # inherited by forked workers (copy-on-write)


def _screen_chunk(chunk: list[ScreeningSubject]) -> list[tuple[str | None, str, float, list[str]]]:
    assert _SCREENER is not None
    return [
        (o.reference, o.decision, o.top_score, [m.entity_id for m in o.matches if m.score >= 0.7])
        for o in _SCREENER.screen_many(chunk)
    ]


def _summary(outcome: ScreeningOutcome) -> tuple[str | None, str, float, list[str]]:
    return (
        outcome.reference,
        outcome.decision,
        outcome.top_score,
        [m.entity_id for m in outcome.matches if m.score >= 0.7],
    )


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished workers (the machine may be shared)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    global _SCREENER
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lists", nargs="+", type=Path, default=[DEFAULT_LIST])
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--listed-share", type=float, default=0.005)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = time.perf_counter()
    entities, version = load_lists(args.lists)
    loaded = time.perf_counter()
    screener = Screener(entities, version)
    built = time.perf_counter()
    _SCREENER = screener
    names = sum(len(e.names) + len(e.previous_names) for e in entities)
    print(f"list: {len(entities)} entities, {names} strong names, version {version}")
    print(
        f"  load {loaded - started:.2f} s, index build {built - loaded:.2f} s, "
        f"{len(screener.index.vocabulary)} distinct tokens"
    )

    persons = [e for e in entities if e.schema_ == "person"]
    singles, _ = make_clients(rng, persons, args.single, 0.05)
    screener.screen(singles[0])  # warm-up: thread pool and caches
    latencies = []
    for subject in singles:
        t0 = time.perf_counter()
        screener.screen(subject)
        latencies.append((time.perf_counter() - t0) * 1000)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"single screening over {len(latencies)} names: p50 {statistics.median(latencies):.2f} ms, "
        f"p95 {p95:.2f} ms, max {latencies[-1]:.2f} ms"
    )

    clients, planted = make_clients(rng, persons, args.clients, args.listed_share)
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    if args.workers > 1:
        size = (len(clients) + args.workers * 4 - 1) // (args.workers * 4)
        chunks = [clients[i : i + size] for i in range(0, len(clients), size)]
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            results = [r for part in pool.map(_screen_chunk, chunks) for r in part]
    else:
        results = [_summary(o) for o in screener.screen_many(clients)]
    elapsed = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    decisions = Counter(decision for _, decision, _, _ in results)
    found = sum(1 for ref, _, _, ids in results if ref in planted and planted[ref] in ids)
    false_alerts = sum(
        1 for ref, decision, _, _ in results if ref not in planted and decision != "clear"
    )
    print(
        f"batch re-screening of {len(clients)} clients with {args.workers} worker(s): {elapsed:.1f} s "
        f"({len(clients) / elapsed:.0f} clients/s; {cpu:.1f} CPU-s, "
        f"{cpu / len(clients) * 1000:.2f} ms CPU per client)"
    )
    print(f"  decisions: {dict(decisions)}")
    print(
        f"  planted list names found at >= 0.70: {found}/{len(planted)}; "
        f"alerts on random clients: {false_alerts}/{len(clients) - len(planted)}"
    )
    own, children = rss_mb()
    print(f"peak RSS: main {own:.0f} MB, largest worker {children:.0f} MB")


if __name__ == "__main__":
    main()
