/*
 * florence_hailo_bridge.h: the project's C ABI between the Rust engine and a
 * Hailo runtime.
 *
 * Two implementations exist:
 *  - florence_hailo_bridge.cpp: HailoRT's C++ VDevice + InferModel API, built
 *    as a shared library per HailoRT major (libflorence_hailo_hailort5.so for
 *    Hailo-10H, libflorence_hailo_hailort4.so for Hailo-8/8L) by
 *    scripts/build-hailo-bridges.sh, against HailoRT's headers only: libhailort
 *    is not linked (not a DT_NEEDED); the engine loads it RTLD_GLOBAL first,
 *    reads its version, then loads the bridge of that major, whose HailoRT
 *    symbols resolve against it;
 *  - hailo-standin/ (a Rust cdylib): runs the exporter's ONNX stand-ins of the
 *    two HEFs and enforces the same contract, with injectable faults, so that
 *    CI runs the engine's whole Hailo side without a device. It also stands in
 *    for libhailort (hailo_get_library_version), so it goes through the same
 *    loader.
 *
 * Every function that can fail returns HailoRT's raw `hailo_status` number
 * (0 = HAILO_SUCCESS; the numbers are identical in HailoRT 4.23 and 5.x up
 * to 93). No C++ exception ever crosses this boundary. Handles are opaque;
 * a model keeps its device alive, so they may be released in any order.
 * Functions on one model must not be called concurrently.
 */
#ifndef FLORENCE_HAILO_BRIDGE_H
#define FLORENCE_HAILO_BRIDGE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration below changes. */
#define FLORENCE_HAILO_BRIDGE_ABI_VERSION 2u

/* The functions below are the only symbols a bridge exports (it is compiled
 * with -fvisibility=hidden). */
#if defined(__GNUC__)
#define FLORENCE_HAILO_API __attribute__((visibility("default")))
#else
#define FLORENCE_HAILO_API
#endif

/* Longest stream name, NUL terminator included (HailoRT's HAILO_MAX_STREAM_NAME_SIZE). */
#define FLORENCE_HAILO_NAME_MAX 128u

typedef int32_t florence_hailo_status;

typedef struct florence_hailo_device florence_hailo_device;
typedef struct florence_hailo_model florence_hailo_model;

/* One input or output stream of a loaded model, in its user format (float32). */
typedef struct {
    char name[FLORENCE_HAILO_NAME_MAX];
    /* HailoRT's hailo_3d_image_shape_t. */
    uint32_t height;
    uint32_t width;
    uint32_t features;
    /* Bytes of one frame at float32: height * width * features * 4. */
    uint64_t frame_bytes;
} florence_hailo_stream;

/* A host buffer bound to a stream by name for one run. */
typedef struct {
    const char *name;
    void *data;
    uint64_t bytes;
} florence_hailo_buffer;

/* FLORENCE_HAILO_BRIDGE_ABI_VERSION of the implementation. */
FLORENCE_HAILO_API uint32_t florence_hailo_abi_version(void);

/* The HailoRT major version whose headers the bridge was compiled against
 * (4: Hailo-8/8L, 5: Hailo-10H): the engine uses it only with a libhailort of
 * that major (hailo_get_library_version). */
FLORENCE_HAILO_API uint32_t florence_hailo_hailort_major(void);

/*
 * Opens a virtual device with the round-robin scheduler. `group_id` names
 * the group whose processes share the chip (e.g. "SHARED"; NULL means
 * HailoRT's default "UNIQUE", exclusive use). multi_process_service is never
 * set (it is an error on Hailo-10H).
 */
FLORENCE_HAILO_API
florence_hailo_status florence_hailo_open_device(const char *group_id,
                                                 florence_hailo_device **device);

/*
 * Loads a HEF on the device, every input and output bound as FLOAT32 on the
 * host (HailoRT quantises and dequantises), and configures it with the given
 * scheduler priority (HailoRT's 0..31, 16 normal).
 */
FLORENCE_HAILO_API
florence_hailo_status florence_hailo_load_model(florence_hailo_device *device,
                                                const char *hef_path,
                                                uint8_t scheduler_priority,
                                                florence_hailo_model **model);

/* Number of inputs (is_output = 0) or outputs (is_output = 1). */
FLORENCE_HAILO_API
florence_hailo_status florence_hailo_stream_count(const florence_hailo_model *model,
                                                  uint32_t is_output, uint32_t *count);

/* Describes input or output `index` (0-based, in the HEF's order). */
FLORENCE_HAILO_API
florence_hailo_status florence_hailo_describe_stream(const florence_hailo_model *model,
                                                     uint32_t is_output, uint32_t index,
                                                     florence_hailo_stream *info);

/*
 * Runs one frame synchronously: every input and every output bound by name
 * with exactly its frame_bytes. Returns HAILO_NOT_FOUND (61) for a name the
 * model does not have, HAILO_INVALID_ARGUMENT (2) for a size that is not the
 * stream's frame size or a stream left unbound, HAILO_TIMEOUT (4) when the
 * run did not finish within timeout_ms.
 */
FLORENCE_HAILO_API
florence_hailo_status florence_hailo_run(florence_hailo_model *model,
                                         const florence_hailo_buffer *inputs,
                                         uint32_t input_count,
                                         const florence_hailo_buffer *outputs,
                                         uint32_t output_count, uint32_t timeout_ms);

/* Releases a model (NULL is ignored). */
FLORENCE_HAILO_API
void florence_hailo_release_model(florence_hailo_model *model);

/* Releases the caller's reference to a device (NULL is ignored); the chip is
 * freed once its models are released too. */
FLORENCE_HAILO_API
void florence_hailo_release_device(florence_hailo_device *device);

#ifdef __cplusplus
}
#endif

#endif
