"""Build context_server/data/lexicon.json.gz: the subject lexicon references and styles are matched with.

    apt-get install wordnet-base          # WordNet 3.0: /usr/share/wordnet/{index,data}.noun, noun.exc
    python scripts/build_lexicon.py [--wordnet /usr/share/wordnet] [--check]

What it keeps from WordNet, and why:

- Only concrete kinds of things people draw: nouns in the lexicographer files for animals, artifacts, body,
  food, locations, objects, people, plants, phenomena, substances and communication (logos, posters, maps).
- Per word, only its common senses: the senses with tagged corpus counts (WordNet orders senses by
  frequency), or every sense when none was tagged. So "dog" is the animal, never the frankfurter (its fifth,
  untagged sense), while "hot dog" (untagged) keeps its food senses.
- Every hypernym of a kept sense (so a corgi is a dog, a dog an animal; ramen soup, soup food).
- Multi-word lemmas ("hot dog", "golden retriever", "Space Needle") as compounds, matched as one unit.
- Irregular plurals (noun.exc) of the kept words.

Then scripts/lexicon_supplement.py adds what WordNet 3.0 lacks (new words, compounds whose head must not
match, better senses) and the picture *topics* (space, landscape, portrait, logo, ...). `--check` prints the
gloss of every sense the supplement names, to review it.

Output: {"version", "terms": {word: [concept, ...]}, "parents": {concept: [concept, ...]},
"plurals": {form: word}, "words": [other real words]}; a concept is a WordNet synset offset (as an int-like string without leading
zeros) or a name defined by the supplement.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lexicon_supplement import NEW_TERMS, SENSES, TOPICS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "context_server" / "data" / "lexicon.json.gz"
VERSION = "wn3.0-s1"
#: animal, artifact, body, communication, food, group (forests, galaxies), location, object, person, phenomenon, plant, substance
LEXFILES = {5, 6, 8, 10, 13, 14, 15, 17, 18, 19, 20, 27}
#: Rare (untagged) multi-word names are kept only for things drawn as such: animals ("golden retriever"),
#: artifacts ("hot dog stand", "Space Needle"), body, food ("hot dog"), locations, natural objects and
#: phenomena ("northern lights").
#: Untagged multi-word people, plants, groups and substances ("abstract expressionist", "acacia tree")
#: are left out: their last word already says what they are, and they would triple the file.
COMPOUND_LEXFILES = {5, 6, 8, 13, 15, 17, 19}
#: Named places and landmarks (Paris, the Sahara, the Space Needle) are kept, with what they are part of.
PLACES = {6, 15, 17}
TAXA = {"genus", "family", "order", "class", "phylum", "subfamily", "suborder", "subclass", "superfamily",
        "division", "tribe", "subgenus", "superorder", "infraorder"}
#: Modifiers that usually describe rather than name: "black cat", "white elephant" (see main()).
PLAIN_MODIFIERS = {"black", "white", "red", "blue", "green", "yellow", "brown", "grey", "gray", "pink", "purple",
                   "orange", "golden", "silver", "big", "little", "small", "large", "giant", "great", "old",
                   "young", "wild", "baby", "tiny", "dark", "light"}
#: Ancestors too general to say anything about a picture: left out of every closure.
TOO_GENERAL = {"entity", "physical entity", "abstraction", "object", "whole", "matter", "thing",
               "causal agent", "unit", "physical object", "living thing", "organism", "being"}


def parse_data(path: Path) -> dict[str, dict[str, object]]:
    synsets: dict[str, dict[str, object]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        head, _, gloss = line.partition(" | ")
        parts = head.split()
        offset, lexfile = parts[0], int(parts[1])
        count = int(parts[3], 16)
        words = [parts[4 + 2 * i] for i in range(count)]
        at = 4 + 2 * count
        n_ptr = int(parts[at])
        parents, wholes = [], []
        for i in range(n_ptr):
            symbol, target, pos = parts[at + 1 + 4 * i: at + 4 + 4 * i]
            if symbol in ("@", "@i") and pos == "n":
                parents.append(target)
            elif symbol == "#p" and pos == "n":
                wholes.append(target)
        instance = any(parts[at + 1 + 4 * i] == "@i" for i in range(n_ptr))
        synsets[offset] = {"lexfile": lexfile, "words": words, "parents": parents, "gloss": gloss.strip(),
                           "instance": instance, "wholes": wholes}
    # the Eiffel Tower is in Paris, Paris in France: a named place's picture is a picture of where it is
    # ("the Paris one"); only into cities, regions and countries, so Tokyo is not an island's landscape
    for syn in synsets.values():
        if syn["instance"] and syn["lexfile"] in PLACES:
            syn["parents"] = [*syn["parents"], *(w for w in syn["wholes"] if _is_area(synsets, w))]
    return synsets


def _is_area(synsets: dict[str, dict[str, object]], offset: str) -> bool:
    """A city, region or country, not a natural object (Honshu is an island: Tokyo is no island scene)."""
    syn = synsets[offset]
    return syn["lexfile"] == 15 and all(synsets[p]["lexfile"] != 17 for p in syn["parents"])  # type: ignore[attr-defined]


def parse_index(path: Path) -> dict[str, tuple[list[str], int]]:
    index: dict[str, tuple[list[str], int]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        parts = line.split()
        lemma, synset_cnt, p_cnt = parts[0], int(parts[2]), int(parts[3])
        tagged = int(parts[5 + p_cnt])
        offsets = parts[6 + p_cnt: 6 + p_cnt + synset_cnt]
        index[lemma.replace("_", " ")] = (offsets, tagged)
    return index


def cid(offset: str) -> str:
    return str(int(offset))


def known_words(wordnet: Path, terms: dict[str, list[str]]) -> list[str]:
    """Every other single English word of 5+ letters WordNet knows (adjectives, verbs, adverbs, nouns that
    are not things): a real word is never "corrected" into a thing ("sleek" is not a misspelt "leek")."""
    words: set[str] = set()
    for part in ("noun", "verb", "adj", "adv"):
        for line in (wordnet / f"index.{part}").read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):
                continue
            lemma = line.split(" ", 1)[0]
            if len(lemma) >= 5 and lemma.isalpha() and lemma.isascii() and lemma not in terms:
                words.add(lemma)
    return sorted(words)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    synsets = parse_data(args.wordnet / "data.noun")
    index = parse_index(args.wordnet / "index.noun")
    names = {off: s["words"][0].replace("_", " ").lower() for off, s in synsets.items()}  # type: ignore[index]

    terms: dict[str, list[str]] = {}
    for lemma, (offsets, tagged) in index.items():
        if lemma.count(" ") > 3 or any(ch.isdigit() for ch in lemma):
            continue
        chosen = offsets[: max(1, tagged)] if tagged else offsets
        kept = []
        for off in chosen:
            syn = synsets[off]
            if syn["lexfile"] not in LEXFILES:
                continue
            if not tagged and " " in lemma and syn["lexfile"] not in COMPOUND_LEXFILES:
                continue
            if any(w.split("_", 1)[0] in TAXA for w in syn["words"]):  # type: ignore[attr-defined]
                continue  # "Canis, genus Canis": a taxon, not a thing anyone draws
            spelled = [w for w in syn["words"] if w.replace("_", " ").lower() == lemma]  # type: ignore[attr-defined]
            # named individuals (Paris, Einstein) are left out, except landmarks kept as units (Space
            # Needle); capitalised kinds stay (Great Dane, Dalmatian, Siamese cat)
            proper = bool(spelled) and all(w[0].isupper() for w in spelled) and bool(syn["instance"])
            if proper and syn["lexfile"] not in PLACES:  # people and events by name are not subjects
                continue
            kept.append(off)
        lexfiles = [synsets[o]["lexfile"] for o in kept]
        living = any(f in (5, 20) for f in lexfiles)
        if kept and living and 13 in lexfiles and (lexfiles[0] in (5, 20) or not tagged):
            # "a catfish in a pond" is the animal: the food sense of an animal or plant whose first (or, with
            # no corpus counts, any) sense is the living thing is left out; "chicken", food first, keeps both
            kept = [o for o in kept if synsets[o]["lexfile"] != 13]
        if kept and not any(synsets[o]["lexfile"] in (5, 20) for o in kept):
            # "whale" is first a very large person in the corpus counts; a picture of a whale is the animal
            living = next((o for o in offsets if synsets[o]["lexfile"] in (5, 20) and o not in kept), None)
            if living is not None and tagged:
                kept.append(living)
        if kept:
            terms[lemma] = [cid(o) for o in kept]

    def ancestors(offset: str, seen: set[str] | None = None) -> set[str]:
        seen = set() if seen is None else seen
        for parent in synsets[offset]["parents"]:  # type: ignore[attr-defined]
            if parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    # "a black cat" is a cat, though WordNet's "black cat" is a marten: a compound made of a plain modifier
    # and a head word also means what its head word means, unless it is a kind of that already.
    for lemma in [t for t in terms if " " in t and t.split(" ", 1)[0] in PLAIN_MODIFIERS]:
        head = lemma.rsplit(" ", 1)[1]
        if head not in terms or index[lemma][1]:
            continue
        head_senses = {o.zfill(8) for o in terms[head]}
        if not any(head_senses & (ancestors(o.zfill(8)) | {o.zfill(8)}) for o in terms[lemma]):
            terms[lemma] = [*terms[lemma], *terms[head]]

    def sense(ref: str) -> list[str]:
        """'word' → that word's kept senses (or a supplement concept); 'word#N' → WordNet sense N."""
        word, _, number = ref.partition("#")
        if number:
            offsets, _ = index[word]
            return [cid(offsets[int(number) - 1])]
        if word in TOPICS or word in NEW_TERMS or word in ("space",):
            return [word]
        if word in terms:
            return terms[word]
        print(f"warning: supplement names {ref!r}, which is not a kept WordNet word or supplement term",
              file=sys.stderr)
        return []

    parents: dict[str, set[str]] = {}
    seen: set[str] = set()
    todo = [o for ids in terms.values() for o in ids]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        syn = synsets[c.zfill(8)]
        ups = [cid(p) for p in syn["parents"] if names[p] not in TOO_GENERAL]  # type: ignore[attr-defined]
        if ups:
            parents[c] = set(ups)
        todo.extend(ups)
    for word, kinds in NEW_TERMS.items():
        parents.setdefault(word, set()).update(x for k in kinds for x in sense(k))
        terms[word] = [word]
    for word, refs in SENSES.items():
        terms[word] = sorted({x for r in refs for x in sense(r)})
    parents.setdefault("space", set())
    for topic, members in TOPICS.items():
        for member in members:
            for c in sense(member):
                if c != topic:
                    parents.setdefault(c, set()).add(topic)
    for word in TOPICS:
        terms.setdefault(word, [word])
        if word not in terms[word]:
            terms[word] = sorted({*terms[word], word})

    plurals = {}
    for line in (args.wordnet / "noun.exc").read_text(encoding="latin-1").splitlines():
        form, base = line.split()[:2]
        form, base = form.replace("_", " "), base.replace("_", " ")
        if base in terms and form not in terms:
            plurals[form] = base

    if args.check:
        for ref in sorted({*(k for v in NEW_TERMS.values() for k in v), *(r for v in SENSES.values() for r in v),
                           *(m for v in TOPICS.values() for m in v)}):
            for c in sense(ref):
                gloss = synsets[c.zfill(8)]["gloss"] if c.isdigit() else "(supplement)"
                print(f"{ref:28} {c:>9} {names.get(c.zfill(8), c):24} {str(gloss)[:80]}")
        return
    used = sorted({c for ids in terms.values() for c in ids} | set(parents)
                  | {p for ps in parents.values() for p in ps}, key=lambda c: (not c.isdigit(), c.zfill(9)))
    number = {c: i for i, c in enumerate(used)}
    out = {
        "version": VERSION,
        "names": {str(number[c]): c for c in used if not c.isdigit()},
        "terms": {w: [number[c] for c in ids] for w, ids in sorted(terms.items())},
        "parents": [sorted(number[p] for p in parents.get(c, ())) for c in used],
        "plurals": dict(sorted(plurals.items())),
        "words": known_words(args.wordnet, terms),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    with gzip.GzipFile(OUT, "wb", mtime=0) as fh:  # mtime=0: the same input builds the same bytes
        fh.write(data)
    print(f"{OUT}: {len(terms)} terms, {len(used)} concepts, {len(plurals)} plurals, "
          f"{len(data) // 1024} KB of JSON, {OUT.stat().st_size // 1024} KB gzipped")


if __name__ == "__main__":
    main()
