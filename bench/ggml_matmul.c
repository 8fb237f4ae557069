/* Baseline harness for bench/bench_coset_deploy.py: ggml's CPU mat-mul on llama.cpp's quantized formats.
 *
 * Our own code, calling only ggml's public API (ggml.h, ggml-cpu.h); it is compiled at bench time against a
 * ggml built from the llama-cpp-python sdist outside our tree (bench/_llama_cpp.py), never in CI.
 *
 *   ggml_matmul WEIGHTS.f32 ROWS COLS REPEAT1 REPEAT64 TYPE...
 *
 * WEIGHTS.f32 holds ROWS x COLS float32 values, row major (one output row per weight row). For each TYPE
 * (a ggml type name: q4_0, iq4_xs, q4_K, f32, ...) it quantizes the weight with ggml_quantize_chunk (no
 * importance matrix), dequantizes it with the type's to_float and prints one line
 *
 *   TYPE bits_per_weight mse ms_batch1 ms_batch64
 *
 * where mse is the mean squared error of the dequantized weight and the times are the best CPU time of
 * ggml_mul_mat (weight x float32 activations, one thread; the activations are converted to the type's dot
 * product format inside, as in llama.cpp) over REPEAT1 / REPEAT64 runs; REPEAT 0 skips the timing (prints nan).
 * Each timed product is first checked against the dequantized weight (nan and a note on stderr when off).
 * A type that needs an importance matrix prints "TYPE skipped requires-imatrix".
 * With LOWBIT_GGML_COPIES=K (default 1), K copies of the quantized weight are multiplied in turn in each timed
 * run and the time printed is per copy: with K x the weight's bytes well above the last-level cache, the
 * weights stream from DRAM, as a model's layers do in token-by-token decoding.
 * With LOWBIT_GGML_DUMP_DIR set, the dequantized weight of each TYPE is also written (ROWS x COLS float32,
 * row major) to $LOWBIT_GGML_DUMP_DIR/TYPE.f32, so that the caller can measure the error on part of it
 * (e.g. without the zero padding it added to make COLS a multiple of the type's block size).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-cpu.h"
#include "ggml.h"

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int type_by_name(const char * name) {
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const struct ggml_type_traits * tr = ggml_get_type_traits((enum ggml_type)t);
        if (tr && tr->type_name && tr->blck_size > 0 && strcmp(tr->type_name, name) == 0) {
            return t;
        }
    }
    return -1;
}

/* Best CPU time (seconds) of out = W x X with X of `batch` float32 columns; NAN when the result is off
 * (relative L2 error above 5 % against the dequantized weight `back` times X in double precision). */
static double time_mul_mat(enum ggml_type type, const void * wq, size_t wbytes, const float * back, int64_t rows,
                           int64_t cols, int batch, int repeat, int copies) {
    size_t mem = (size_t)copies * (wbytes + (size_t)4 * (size_t)rows * (size_t)batch) +
                 (size_t)4 * (size_t)cols * (size_t)batch + (16 + 4 * (size_t)copies) * ggml_tensor_overhead() +
                 ggml_graph_overhead() + (1u << 20);
    struct ggml_init_params params = {mem, NULL, false};
    struct ggml_context * ctx = ggml_init(params);
    struct ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, cols, batch);
    float * xd = (float *)x->data;
    uint64_t s = 12345;
    for (int64_t i = 0; i < cols * batch; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        xd[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    struct ggml_cgraph * gf = ggml_new_graph(ctx);
    struct ggml_tensor * out = NULL;
    for (int k = 0; k < copies; k++) {  // copy 0's product is the one checked
        struct ggml_tensor * w = ggml_new_tensor_2d(ctx, type, cols, rows);
        memcpy(w->data, wq, wbytes);
        struct ggml_tensor * o = ggml_mul_mat(ctx, w, x);
        if (k == 0) out = o;
        ggml_build_forward_expand(gf, o);
    }
    struct ggml_cplan plan = ggml_graph_plan(gf, 1, NULL);
    void * work = plan.work_size ? malloc(plan.work_size) : NULL;
    plan.work_data = work;
    ggml_graph_compute(gf, &plan);  // warm up, and the result checked below
    double num = 0.0, den = 0.0;
    for (int b = 0; b < batch; b++) {
        for (int64_t r = 0; r < rows; r += 7) {
            double ref = 0.0;
            for (int64_t c = 0; c < cols; c++) ref += (double)back[r * cols + c] * (double)xd[b * cols + c];
            double d = (double)((const float *)out->data)[b * rows + r] - ref;
            num += d * d;
            den += ref * ref;
        }
    }
    if (!(num <= 0.0025 * den)) {
        fprintf(stderr, "%s: mul_mat result off by %.3g (relative L2)\n", ggml_type_name(type), sqrt(num / den));
        free(work);
        ggml_free(ctx);
        return NAN;
    }
    double best = INFINITY;
    for (int r = 0; r < repeat; r++) {
        double t0 = cpu_seconds();
        ggml_graph_compute(gf, &plan);
        double t = cpu_seconds() - t0;
        if (t < best) best = t;
    }
    free(work);
    ggml_free(ctx);
    return best / copies;
}

int main(int argc, char ** argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s WEIGHTS.f32 ROWS COLS REPEAT1 REPEAT64 TYPE...\n", argv[0]);
        return 2;
    }
    const int64_t rows = atoll(argv[2]), cols = atoll(argv[3]);
    const int rep1 = atoi(argv[4]), rep64 = atoi(argv[5]);
    const size_t n = (size_t)(rows * cols);
    float * w = malloc(n * sizeof(float));
    float * back = malloc(n * sizeof(float));
    FILE * f = fopen(argv[1], "rb");
    if (!f || fread(w, sizeof(float), n, f) != n) {
        fprintf(stderr, "cannot read %zu floats from %s\n", n, argv[1]);
        return 2;
    }
    fclose(f);
    const char * copies_env = getenv("LOWBIT_GGML_COPIES");
    const int copies = copies_env && atoi(copies_env) > 0 ? atoi(copies_env) : 1;
    ggml_cpu_init();
    for (int a = 6; a < argc; a++) {
        int t = type_by_name(argv[a]);
        if (t < 0) {
            printf("%s skipped unknown-type\n", argv[a]);
            continue;
        }
        enum ggml_type type = (enum ggml_type)t;
        if (ggml_quantize_requires_imatrix(type)) {
            printf("%s skipped requires-imatrix\n", argv[a]);
            continue;
        }
        const size_t wbytes = ggml_row_size(type, cols) * (size_t)rows;
        void * wq = malloc(wbytes);
        if (type == GGML_TYPE_F32) {
            memcpy(wq, w, wbytes);
        } else {
            ggml_quantize_chunk(type, w, wq, 0, rows, cols, NULL);
        }
        const struct ggml_type_traits * tr = ggml_get_type_traits(type);
        if (type == GGML_TYPE_F32) {
            memcpy(back, wq, wbytes);
        } else {
            tr->to_float(wq, back, (int64_t)n);
        }
        const char * dump_dir = getenv("LOWBIT_GGML_DUMP_DIR");
        if (dump_dir && *dump_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.f32", dump_dir, argv[a]);
            FILE * g = fopen(path, "wb");
            if (!g || fwrite(back, sizeof(float), n, g) != n) {
                fprintf(stderr, "cannot write %zu floats to %s\n", n, path);
                return 2;
            }
            fclose(g);
        }
        double err = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)back[i] - (double)w[i];
            err += d * d;
        }
        double t1 = rep1 > 0 ? time_mul_mat(type, wq, wbytes, back, rows, cols, 1, rep1, copies) : NAN;
        double t64 = rep64 > 0 ? time_mul_mat(type, wq, wbytes, back, rows, cols, 64, rep64, copies) : NAN;
        printf("%s %.6f %.9g %.6f %.6f\n", argv[a], 8.0 * (double)wbytes / (double)n, err / (double)n, t1 * 1e3,
               t64 * 1e3);
        fflush(stdout);
        free(wq);
    }
    free(w);
    free(back);
    return 0;
}
