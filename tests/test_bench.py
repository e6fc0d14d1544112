"""Benchmark plumbing: FLOP arithmetic, figure formatting, the README section. Nothing
here times anything or loads a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import parse_spread, ratio_spread, speed_ratios, spread, verdict
from bench.flops import (
    MINILM_L6,
    CpuPeak,
    EncoderShape,
    cpu_peak,
    encoder_flops,
    mean_encoder_flops,
    passages_per_s_bound,
    simd_from_flags,
)
from bench.op_profile import kind_of
from bench.report import (
    END,
    START,
    MarkerError,
    backends_line,
    build_section,
    faults_line,
    file_eval_line,
    grounding_line,
    ingest_line,
    ingest_ray_line,
    multiturn_line,
    op_profile_line,
    p99_during_ingest,
    replace_between_markers,
    scale_line,
)

# -- FLOPs ------------------------------------------------------------------------------


def test_encoder_flops_by_hand_on_a_tiny_shape() -> None:
    shape = EncoderShape(layers=1, hidden=2, intermediate=4, heads=1)
    # 8·n·d² + 4·n·d·d_ff + 4·n²·d at n=3, d=2, d_ff=4: 96 + 96 + 72
    assert encoder_flops(shape, 3) == 264
    assert encoder_flops(EncoderShape(2, 2, 4, 1), 3) == 2 * 264


def test_minilm_l6_flops_per_passage() -> None:
    assert MINILM_L6.layer_params == 4 * 384 * 384 + 2 * 384 * 1536 == 1_769_472
    # 6 · (2 · 1,769,472 · 128 + 4 · 128² · 384)
    assert encoder_flops(MINILM_L6, 128) == 6 * (2 * 1_769_472 * 128 + 4 * 128 * 128 * 384)
    assert encoder_flops(MINILM_L6, 128) == pytest.approx(2.869e9, rel=1e-3)


def test_bert_base_matches_the_usual_figure() -> None:
    bert_base = EncoderShape(layers=12, hidden=768, intermediate=3072, heads=12)
    assert encoder_flops(bert_base, 128) == pytest.approx(22.35e9, rel=1e-3)


def test_shape_read_from_the_model_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536,'
        ' "num_attention_heads": 12, "vocab_size": 30522}'
    )
    assert EncoderShape.from_config(tmp_path) == MINILM_L6


def test_mean_flops_is_not_below_flops_at_the_mean_count() -> None:
    counts = [32, 256]
    assert mean_encoder_flops(MINILM_L6, counts) > encoder_flops(MINILM_L6, 144)
    assert mean_encoder_flops(MINILM_L6, [100, 100]) == encoder_flops(MINILM_L6, 100)
    with pytest.raises(ValueError):
        mean_encoder_flops(MINILM_L6, [])


@pytest.mark.parametrize(
    ("flags", "isa", "per_cycle"),
    [
        ({"sse2", "avx", "avx2", "fma", "avx512f"}, "AVX-512F", 64),
        ({"sse2", "avx", "avx2", "fma"}, "AVX2+FMA", 32),
        ({"sse2", "sse4_2"}, "SSE", 8),
    ],
)
def test_flops_per_cycle_from_cpu_flags(flags: set[str], isa: str, per_cycle: int) -> None:
    name, lanes, fma = simd_from_flags(flags)
    assert name == isa
    assert CpuPeak(1, 1.0, "test", name, lanes, fma).flops_per_cycle == per_cycle


CPUINFO = "\n\n".join(
    f"processor\t: {cpu}\nvendor_id\t: GenuineIntel\nphysical id\t: 0\ncore id\t\t: {cpu // 2}\n"
    f"cpu MHz\t\t: 2000.000\nflags\t\t: fpu sse2 avx avx2 fma\nbogomips\t: 4000.00"
    for cpu in range(4)
)


def test_peak_counts_physical_cores_of_the_affinity_mask() -> None:
    peak = cpu_peak(CPUINFO, allowed=[0, 1, 2, 3], max_khz=None)
    assert peak.cores == 2  # two SMT siblings per core
    assert peak.ghz == pytest.approx(2.0)
    assert peak.flops == pytest.approx(2 * 2.0e9 * 32)
    assert cpu_peak(CPUINFO, allowed=[0], max_khz=None).cores == 1
    assert "AVX2+FMA" in " ".join(peak.assumptions())


def test_peak_prefers_the_cpufreq_maximum() -> None:
    peak = cpu_peak(CPUINFO, allowed=[0, 2], max_khz=3_500_000)
    assert (peak.cores, peak.ghz, peak.clock_source) == (2, 3.5, "cpufreq maximum")


def test_passages_per_second_bound() -> None:
    assert passages_per_s_bound(332e9, encoder_flops(MINILM_L6, 128)) == pytest.approx(
        115.7, rel=1e-3
    )


# -- figures ----------------------------------------------------------------------------


def test_spread_and_its_parse_round_trip() -> None:
    assert spread([3.0, 1.0, 2.0]) == "2.00 (1.00-3.00)"
    assert spread([1.5]) == "1.50"
    assert parse_spread("2.00 (1.00-3.00)") == (2.0, 1.0, 3.0)
    assert parse_spread("1.50") == (1.5, 1.5, 1.5)
    assert parse_spread("1.25x (1.10-1.40)") == (1.25, 1.10, 1.40)
    assert parse_spread("1.25x (1.10\u20131.40)") == (1.25, 1.10, 1.40)  # en dash
    with pytest.raises(ValueError):
        parse_spread("-")


def test_speed_ratios_pair_repeats_and_orient_latencies() -> None:
    assert speed_ratios([10, 20], [5, 40]) == [2.0, 0.5]  # rates: ours / theirs
    assert speed_ratios([10, 20], [5, 40], higher_is_faster=False) == [0.5, 2.0]  # latencies
    with pytest.raises(ValueError):
        speed_ratios([1, 2], [1])
    assert ratio_spread([1.0, 1.5, 1.2]) == "1.20x (1.00-1.50)"
    assert ratio_spread([0.8]) == "0.80x"


def test_verdict_follows_the_numbers() -> None:
    assert verdict(1.3, 1.2, 1.4) == "ahead"
    assert verdict(0.8, 0.7, 0.9) == "behind"
    assert verdict(0.95, 0.9, 1.05) == "behind at the median, within run-to-run spread"
    assert verdict(1.05, 0.9, 1.1) == "ahead at the median, within run-to-run spread"
    assert verdict(0.5, 0.5, 0.5) == "behind"


# -- README section ---------------------------------------------------------------------


def test_markers_replace_only_between_them() -> None:
    before = f"# Title\n\nintro\n{START}\nold line\nold 2\n{END}\n\n## After\ntext\n"
    after = replace_between_markers(before, "new section\n")
    assert after == f"# Title\n\nintro\n{START}\nnew section\n{END}\n\n## After\ntext\n"
    assert replace_between_markers(after, "new section") == after  # idempotent


def test_markers_keep_outside_bytes_even_inline() -> None:
    text = f"a  {START}x{END}  b\r\n"
    assert replace_between_markers(text, "y") == f"a  {START}\ny\n{END}  b\r\n"


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f"only the start {START}\n",
        f"{START}\n{START}\n{END}\n",
        f"{END}\nreversed\n{START}\n",
    ],
)
def test_markers_missing_or_wrong_refuse(text: str) -> None:
    with pytest.raises(MarkerError):
        replace_between_markers(text, "body")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


ENV = "Environment: 2026-11-25 · x86_64 · 2 CPUs · Python 3.11.7 · torch 2.13.0"


def test_section_is_built_from_the_tables(tmp_path: Path) -> None:
    results = tmp_path / "bench" / "results"
    header = (
        "corpus,system,docs,chunks,docs/s,chunks/s,embeddings/s,tokens/passage,"
        "FLOP bound emb/s,emb/s ÷ bound,docs/s vs LlamaIndex,emb/s vs plain\n"
    )
    _write(
        results / "ingest.csv",
        header + "SciFact,ragline (chunk → embed → write),300,550,3.0 (2.9-3.1),5,12,190,76,"
        "0.16 (0.15-0.17),0.80x (0.70-0.90),1.02x (0.98-1.05)\n"
        + "SciFact,LlamaIndex 0.14 (IngestionPipeline → VectorStoreIndex),300,540,3.7,5,12,"
        "190,76,0.16,-,1.00x\n",
    )
    _write(results / "ingest.md", f"# Ingestion\n\n{ENV}\n")
    _write(results / "ingest.png", "png")
    _write(
        results / "query.csv",
        "configuration,p50 ms,p95 ms,speed vs LlamaIndex (FAISS),speed vs plain\n"
        "plain encode + FAISS (floor),10.0 (9-11),12,0.9x,-\n"
        "LlamaIndex retriever, FAISS store (peer),11.0 (10-12),13,-,0.91x\n".replace(
            "LlamaIndex retriever, FAISS store (peer)", '"LlamaIndex retriever, FAISS store"'
        )
        + "ragline dense,9.0 (8-10),11,1.22x (1.10-1.30),1.11x (1.05-1.20)\n",
    )
    _write(
        results / "generate.csv",
        "system,prompt,prompt tokens,TTFT ms,decode tok/s,cached fraction\n"
        "ragline GenerationEngine (in-process),first question,900,200.0 (190-210),50.0,-\n"
        "vllm serve 0.32.0 (HTTP; /v1/completions),first question,900,250.0,55.0,-\n"
        'ragline GenerationEngine (in-process),"question alone, no RAG",60,40.0,50.0,-\n'
        'vllm serve 0.32.0 (HTTP; /v1/completions),"question alone, no RAG",60,60.0,45.0,-\n'
        '"ragline, canonical source order",second question,900,50.0,50.0,0.9\n'
        '"ragline, score source order",second question,900,150.0,50.0,0.1\n',
    )
    _write(results / "scifact" / "eval.md", "# eval\n\nQuality/latency frontier: bm25 c256/o32\n")
    _write(results / "scifact" / "eval.png", "png")
    _write(
        results / "scifact" / "eval.csv",
        "mode,rerank_depth,chunk_size,overlap,nDCG@10,recall@100,MRR@10,p50_ms,p95_ms,queries\n"
        "bm25,0,256,32,0.6800,0.9,0.6,1.3,2.5,300\n"
        "hybrid,0,128,32,0.7000,0.9,0.6,19.0,28.0,300\n"
        "hybrid,0,256,32,0.7100,0.9,0.6,20.0,28.0,300\n"
        "hybrid,20,256,32,0.7300,0.9,0.6,400.0,500.0,300\n",
    )

    section = build_section(results, tmp_path)
    assert "x86_64 · 2 CPUs" in section
    assert "0.80x (0.70-0.90) LlamaIndex's documents/s — behind" in section
    assert "16% of the CPU's FP32 FLOP bound" in section
    assert "[plot](bench/results/ingest.png)" in section
    assert "1.22x (1.10-1.30) LlamaIndex's speed — ahead" in section
    assert "TTFT 1.25x vllm serve 0.32.0's speed — ahead" in section
    assert "decode tokens/s 0.91x — behind" in section
    assert "no RAG, TTFT 1.50x vllm serve 0.32.0's speed — ahead" in section
    assert "3.0x sooner" in section
    assert "Load** not measured yet" in section
    assert "frontier on SciFact (`ragline eval --sweep`): bm25 c256/o32" in section
    assert "![SciFact nDCG@10 vs p50 latency](bench/results/scifact/eval.png)" in section
    assert "SciFact test, hybrid retrieval" in section
    assert "| chunk / overlap | no rerank | rerank@20 |" in section
    assert "| 128 / 32 | 0.7000 · 19.0 ms | - |" in section
    assert "| 256 / 32 | 0.7100 · 20.0 ms | 0.7300 · 400.0 ms |" in section
    assert "(2026-11-25)" in section


def test_ray_line_compares_the_executors_of_one_run(tmp_path: Path) -> None:
    _write(
        tmp_path / "ingest-ray.csv",
        "corpus,executor,files,chunks,seconds,docs/s,embeddings/s,Ray overhead s/file\n"
        "docs 8,local,8,40,10.0,0.80 (0.70-0.90),20,-\n"
        "docs 8,ray,8,40,20.0,0.40 (0.35-0.45),10,+1.25\n",
    )
    line = ingest_ray_line(tmp_path, lambda name: name)
    assert "0.50x the local executor's documents/s, +1.25 s per file" in line
    assert "](ingest-ray.md)" in line
    _write(tmp_path / "ingest-ray.csv", "corpus,executor\ndocs,local\n")
    with pytest.raises(ValueError):
        ingest_ray_line(tmp_path, lambda name: name)


def test_backends_line_names_the_chosen_runtime_and_the_fastest_gated_reranker(
    tmp_path: Path,
) -> None:
    header = (
        "runtime,tokens,passages/s,÷ plain fp32 loop,% of GEMM rate at its precision,"
        "cosine to fp32 mean / min,gate (≥ 0.99)\n"
    )
    _write(
        tmp_path / "backends.csv",
        header + "openvino-int8 (auto),256,50.0 (48-52),3.60x (3.40-3.80),61%,0.997 / 0.99,pass\n"
        "torch-fp32,256,14.0,1.00x,40%,1 / 1,pass\n",
    )
    _write(
        tmp_path / "backends-rerank.csv",
        "runtime,rerank@20 p50 ms,speed ÷ torch fp32,nDCG@10,Δ nDCG@10 vs torch fp32,"
        "rank correlation to fp32 (gate),query p50 ms\n"
        "no rerank (hybrid),-,-,0.7130,-,-,20.0\n"
        "openvino-int8,60,5.0x,0.7350,+0.0010,0.90,80\n"  # below the rank gate
        "torch-bf16,70,4.3x,0.7260,-0.0080,0.99,90\n"  # loses nDCG: not the one named
        "openvino-bf16,95,3.2x,0.7320,-0.0020,0.998,115\n"
        "torch-fp32,300,1.00x,0.7340,+0.0000,1.0000,320\n",
    )
    line = backends_line(tmp_path, lambda name: name)
    assert "openvino-int8 at 256 tokens: 50.0 (48-52) passages/s" in line
    assert "3.60x (3.40-3.80) the plain fp32 loop's rate — ahead" in line
    assert "61% of the GEMM rate" in line
    assert "rerank@20 p50 95 ms with openvino-bf16 (3.2x torch fp32's speed)" in line
    assert "nDCG@10 0.7320 (-0.0020 vs torch fp32; 0.7130 without reranking)" in line
    _write(tmp_path / "backends.csv", header + "torch-fp32,256,14.0,1.00x,40%,1 / 1,pass\n")
    with pytest.raises(ValueError, match="auto"):
        backends_line(tmp_path, lambda name: name)


def test_op_profile_line_reads_the_longest_passages(tmp_path: Path) -> None:
    header = (
        "precision,tokens,passages/s (pass alone),% matrix products,% attention,% layer norm,"
        "% elementwise,% data movement,% other,matrix products' rate G/s,"
        "% of GEMM ceiling (matrix products),% of GEMM ceiling (whole pass)\n"
    )
    _write(
        tmp_path / "op_profile.csv",
        header + "int8,85,440.0,45%,30%,4%,12%,8%,1%,1900,45%,20%\n"
        "int8,256,137.0,41%,39%,3%,10%,6%,1%,1950,46%,18%\n"
        "bf16,256,128.0,44%,37%,3%,8%,7%,1%,1740,72%,30%\n",
    )
    line = op_profile_line(tmp_path, lambda name: name)
    assert "int8 at 256 tokens: matrix products 41% of the pass at 46% of the GEMM" in line
    assert "attention 39%, whole pass 18% of the ceiling" in line
    assert "bf16 at 256 tokens: matrix products 44% of the pass at 72%" in line
    assert "85 tokens" not in line


@pytest.mark.parametrize(
    ("node_type", "node_name", "kind"),
    [
        ("FullyConnected", "__module.encoder.layer.2.intermediate.dense/aten::linear/MatMul",
         "matrix products"),
        ("FullyConnected", "__module.encoder.layer.0.attention.self.query/aten::linear/Add",
         "matrix products"),
        ("Subgraph", "__module.encoder.layer.1.attention.self/aten::scaled_dot_product_attention/"
         "ScaledDotProductAttention", "attention"),
        ("MatMul", "__module.encoder.layer.1.attention.self/aten::matmul/MatMul", "attention"),
        ("Subgraph", "__module.encoder.layer.1.attention.self/aten::transpose/Transpose_3",
         "attention"),  # fp32's fused attention
        ("Reshape", "__module.encoder.layer.2.attention.self/aten::view/Reshape", "attention"),
        ("Subgraph", "__module.encoder.layer.1.output/aten::add/Add", "elementwise"),
        ("MVN", "__module.encoder.layer.1.output.LayerNorm/aten::layer_norm/MVN", "layer norm"),
        ("Reorder", "reorder_1", "data movement"),
        ("Range", "range", "other"),
    ],
)  # fmt: skip
def test_profiled_nodes_are_sorted_by_kind(node_type: str, node_name: str, kind: str) -> None:
    assert kind_of(node_type, node_name) == kind


def test_missing_peer_and_unreadable_tables_are_said(tmp_path: Path) -> None:
    _write(
        tmp_path / "ingest.csv",
        "corpus,system,docs,chunks,docs/s,chunks/s,embeddings/s,tokens/passage,"
        "FLOP bound emb/s,emb/s ÷ bound,docs/s vs LlamaIndex,emb/s vs plain\n"
        "samples,ragline (chunk → embed → write),8,32,2,9,9,85,170,0.06,-,1.19x (1.03-1.36)\n",
    )
    assert "LlamaIndex was not installed" in ingest_line(tmp_path, lambda name: name)
    _write(tmp_path / "query.csv", "something,else\n1,2\n")
    section = build_section(tmp_path, tmp_path)
    assert "Query latency** table not readable" in section
    assert "](ingest.md)" in section


def test_ingest_line_gives_the_from_files_rate(tmp_path: Path) -> None:
    _write(
        tmp_path / "ingest.csv",
        "corpus,system,docs,chunks,docs/s,chunks/s,embeddings/s,tokens/passage,"
        "FLOP bound emb/s,emb/s ÷ bound,docs/s vs LlamaIndex,emb/s vs plain\n"
        '1000 short text files,"ragline, from files (parse → chunk → embed → write)",1000,'
        '1522,31.7 (30.2-33.0),48,50,193,88,0.5,"3.78x (3.45-4.11)",0.98x\n'
        "1000 short text files,ragline (chunk → embed → write),1000,1522,60,90,95,193,88,0.9,"
        "-,1.01x\n",
    )
    line = ingest_line(tmp_path, lambda name: name)
    assert "from files on 1000 short text files: 31.7 documents/s, 3.78x (3.45-4.11) " in line
    assert "LlamaIndex's documents/s from the same files — ahead" in line
    assert "on 1000 short text files: embeddings/s" in line


def test_load_line_reads_the_busiest_level(tmp_path: Path) -> None:
    header = (
        "clients,answers,answers/s,tokens/s,TTFT p50 ms,TTFT p95 ms,TTFT p99 ms,TPOT p50 ms,"
        "TPOT p95 ms,TPOT p99 ms,latency p50 ms,latency p95 ms,KV prefix cached,429,errors,"
        "cut streams\n"
    )
    _write(
        tmp_path / "load.csv",
        header
        + "1,3,0.17,5.5,634,653,653,182,216,216,6278,7338,95%,0,0,0\n"
        + "4,9,0.48,14.5,1548,2238,2238,214,258,258,7225,9105,94%,0,1,0\n",
    )
    section = build_section(tmp_path, tmp_path)
    assert "with 4 streaming clients: 0.48 answers/s, 14.5 tokens/s, TTFT p50 1548 ms" in section
    assert "1 errors or cut streams" in section


def test_scale_line_reads_the_largest_collection(tmp_path: Path) -> None:
    header = (
        "system,chunks,import / build,disk MB,serving RSS MB,dense index,dense p50/p95 ms,"
        "BM25 p50/p95 ms,hybrid p50/p95 ms,dense recall@10,searchable after ms (BM25/dense),"
        "hybrid p99 ms idle / during ingest,peer: bm25s rebuild\n"
    )
    _write(
        tmp_path / "scale.csv",
        header
        + 'ragline,"100,000",60 s,900,1200,ivf,9.0 / 12.0,2.0 / 5.0,20.0 / 30.0,0.990,40 / 60,'
        '35 / 50 (max 80; 12 commits),"30 s, query 9.0 ms"\n'
        + 'ragline,"1,000,000",600 s,9000,3100,ivf,10.0 / 15.0,6.0 / 20.0,31.0 / 80.0,0.960,'
        '45 / 90,"95 / 140 (max 300; 20 commits); HTTP job of the server: 380 (max 410)",'
        "not run\n"
        + 'LanceDB 0.40.0,"1,000,000",900 s,3000,900,IVF-PQ,20.0 / 25.0,8.0 / 9.0,62.0 / 70.0,'
        "0.800,10 / 10,80 / 90 (max 100; 5 commits),-\n",
    )
    _write(tmp_path / "scale.md", f"# Scale\n\n{ENV}\n")
    line = scale_line(tmp_path, lambda name: name)
    assert line.startswith("- **Scale** (2026-11-25) 1,000,000 chunks: hybrid p50/p95 31.0 / 80.0")
    assert "recall@10 0.960" in line and "serving RSS 3100 MB" in line
    assert "searchable after 45 / 90 ms" in line
    assert (
        "p99 95 ms idle, 140 ms while an ingestion job runs beside the server (1.5x; max 300"
        in line
    )
    assert "380 ms during an HTTP job of the server (4.0x; max 410 ms)" in line
    assert p99_during_ingest("12 / 30 (max 40; 3 commits)").endswith("(2.5x; max 40 ms)")
    assert "dense p50 2.00x LanceDB 0.40.0's speed — ahead (its recall@10 0.800" in line
    assert "hybrid p50 2.00x LanceDB 0.40.0's speed" in line
    assert "(bm25s): 30 s, query 9.0 ms at 100,000 chunks" in line


def test_quality_lines_read_files_multiturn_and_grounding(tmp_path: Path) -> None:
    _write(
        tmp_path / "file_eval.csv",
        "retrieval,ranks,recall@5,recall@10,nDCG@10,MRR@10,p50_ms,queries\n"
        "ragline hybrid (penalty 0.5),chunks,0.7774,0.84,0.7167,0.68,4.3,300\n"
        '"plain MiniLM, clean documents",whole documents,0.7346,0.78,0.6470,0.60,8.9,300\n'
        '"plain BM25, clean documents",whole documents,0.7362,0.81,0.6863,0.64,0.1,300\n',
    )
    _write(
        tmp_path / "file_eval.md",
        f"# Files\n\n{ENV}\n\nChunks (...): 0.4% of chunks under 16 tokens.\n\n"
        "| file type | chunks | median tokens | under 32 tokens |\n|---|---|---|---|\n"
        "| all | 10109 | 220 | 0.3% |\n",
    )
    line = file_eval_line(tmp_path, lambda name: name)
    assert "hybrid 0.7774 (nDCG@10 0.7167) vs plain MiniLM 0.7346 and plain BM25 0.7362" in line
    assert "10109 chunks, median 220 tokens, 0.4% under 16 tokens" in line

    _write(
        tmp_path / "multiturn.csv",
        "set,retrieval,recall@5,nDCG@10,MRR@10,conversations\n"
        + "".join(
            f"{subset},{name},{value},0.5,0.5,297\n"
            for subset, cells in (
                ("elliptical", (("last turn only", 0.52), ("rewrite only", 0.76))),
                ("new subject", (("last turn only", 0.78), ("rewrite only", 0.68))),
            )
            for name, value in (*cells, ("fused (ragline)", 0.66))
        ),
    )
    _write(tmp_path / "multiturn.md", f"# Multi\n\n{ENV}\n")
    line = multiturn_line(tmp_path, lambda name: name)
    assert (
        "elliptical: recall@5 last turn only 0.52, fused (ragline) 0.66, rewrite only 0.76" in line
    )
    assert "new subject: recall@5 last turn only 0.78" in line

    _write(
        tmp_path / "grounding.csv",
        "questions,n,abstain: retrieval rule (0.35),median best cosine,n answered by the model,"
        "abstain: prompt rule,answer sentences supported,answers citing [n]\n"
        "answerable,300,0.7%,0.6,20,0.0%,35.0%,5.0%\nfar,20,90.0%,0.25,20,10.0%,0.0%,0.0%\n",
    )
    _write(tmp_path / "grounding.md", f"# Grounding\n\n{ENV}\n")
    line = grounding_line(tmp_path, lambda name: name)
    assert "far: 90.0% abstain by the retrieval rule, 10.0% by the prompt's rule" in line
    assert "35.0% of answer sentences supported by a cited or attributed source, 5.0%" in line


def test_faults_line_reads_the_total_and_the_large_upload(tmp_path: Path) -> None:
    header = (
        "fault,injections,jobs finished exactly once,stale reads,documents lost,"
        "duplicated documents,orphan processes,5xx or dropped,peak RSS MB\n"
    )
    _write(
        tmp_path / "faults.csv",
        header + "server kill -9 mid-job,14,14/14,0,0,0,0,0,-\n"
        "parse worker kill -9 mid-job,16,16/16,0,0,0,0,0,-\n"
        "Redis kill -9 + restart under queries,10,1/1,0,0,0,0,2,-\n"
        "total,40,31/31,0,0,0,0,2,server 1500 / child 600\n"
        '100 MiB plain-text upload (no fault),0,"succeeded, {}",-,-,-,-,-,'
        '"server idle 860 → peak 1700 (+840); parse worker peak 640"\n',
    )
    _write(tmp_path / "faults.md", f"# Fault injection\n\n{ENV}\n")
    line = faults_line(tmp_path, lambda name: name)
    assert line.startswith("- **Faults** (2026-11-25) 40 injected faults (server kill -9 mid-job")
    assert "(server kill -9 mid-job: 14; parse worker kill -9 mid-job: 16;" in line
    assert "31/31 jobs finished exactly once, 0 stale reads, 0 documents lost" in line
    assert "2 answers 5xx or dropped" in line
    assert "100 MiB plain-text upload: server idle 860 → peak 1700 (+840)" in line
    assert "](faults.md)" in line
    _write(tmp_path / "faults.csv", header)
    with pytest.raises(StopIteration):
        faults_line(tmp_path, lambda name: name)


# -- the short-files corpus -----------------------------------------------------------------


def test_short_files_are_the_same_on_every_call(tmp_path: Path) -> None:
    from bench.short_files import MAX_CHARS, MIN_CHARS, SCIFACT_CORPUS, write_short_files

    if not SCIFACT_CORPUS.exists():
        pytest.skip(f"needs {SCIFACT_CORPUS}")
    first = write_short_files(tmp_path / "a", 60)
    second = write_short_files(tmp_path / "b", 60)
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    sizes = [len(p.read_text(encoding="utf-8")) for p in first]
    assert all(MIN_CHARS <= size <= MAX_CHARS + 1 for size in sizes)  # + the final newline
    assert {p.suffix for p in first} == {".md", ".txt"}
    assert first[0].read_text().startswith("# ")
