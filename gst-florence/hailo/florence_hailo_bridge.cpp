// florence_hailo_bridge.cpp: florence_hailo_bridge.h over HailoRT's C++
// VDevice + InferModel API, built as a shared library per HailoRT major
// without linking libhailort (scripts/build-hailo-bridges.sh).
//
// InferModel is the one API that runs models on both chips: on Hailo-10H
// (HailoRT 5.x) the C API's configure/vstream path answers
// HAILO_NOT_IMPLEMENTED, and InferModel exists in 4.x since 4.15 for
// Hailo-8/8L. libhailort reports errors through Expected<T> and statuses, not
// exceptions; the standard library can still throw (std::bad_alloc), so every
// entry point catches everything and answers with a status.

#include "florence_hailo_bridge.h"

#include <hailo/hailort.h>
#include <hailo/hailort.hpp>
#include <hailo/infer_model.hpp>
#include <hailo/vdevice.hpp>

#include <chrono>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

static_assert(FLORENCE_HAILO_NAME_MAX == HAILO_MAX_STREAM_NAME_SIZE,
              "stream names are copied into fixed-size fields");

// The HailoRT major these headers belong to, given by the build (it names the
// library file after it). The headers carry no version number; HailoRT 5.x
// dropped the Ethernet stream parameters, which tells the two apart, so a
// bridge compiled against the other major's headers by mistake fails here
// rather than on a Raspberry Pi.
#ifndef FLORENCE_HAILO_HAILORT_MAJOR
#error "define FLORENCE_HAILO_HAILORT_MAJOR (4 or 5): the HailoRT major of the headers"
#endif
#if FLORENCE_HAILO_HAILORT_MAJOR == 4 && !defined(HAILO_DEFAULT_ETH_CONTROL_PORT)
#error "FLORENCE_HAILO_HAILORT_MAJOR is 4, but these HailoRT headers are 5.x"
#elif FLORENCE_HAILO_HAILORT_MAJOR == 5 && defined(HAILO_DEFAULT_ETH_CONTROL_PORT)
#error "FLORENCE_HAILO_HAILORT_MAJOR is 5, but these HailoRT headers are 4.x"
#elif FLORENCE_HAILO_HAILORT_MAJOR != 4 && FLORENCE_HAILO_HAILORT_MAJOR != 5
#error "FLORENCE_HAILO_HAILORT_MAJOR must be 4 or 5"
#endif

namespace {
// The virtual device with the group id its parameters point at: HailoRT keeps
// the parameters (VDevice::get_params), so the string lives as long as it.
struct DeviceState {
    std::string group_id;
    std::unique_ptr<hailort::VDevice> vdevice;
};
} // namespace

struct florence_hailo_device {
    std::shared_ptr<DeviceState> state;
};

struct florence_hailo_model {
    // Declaration order is destruction order reversed: the configured model
    // goes first, then its InferModel, then (if this was the last user) the
    // virtual device.
    std::shared_ptr<DeviceState> device;
    std::shared_ptr<hailort::InferModel> infer_model;
    hailort::ConfiguredInferModel configured;
    std::vector<florence_hailo_stream> inputs;
    std::vector<florence_hailo_stream> outputs;
};

namespace {

template <typename F>
florence_hailo_status guarded(F &&body) noexcept
{
    try {
        return static_cast<florence_hailo_status>(body());
    } catch (const std::bad_alloc &) {
        return HAILO_OUT_OF_HOST_MEMORY;
    } catch (...) {
        return HAILO_INTERNAL_FAILURE;
    }
}

florence_hailo_stream describe(const hailort::InferModel::InferStream &stream)
{
    florence_hailo_stream info{};
    const std::string name = stream.name();
    std::strncpy(info.name, name.c_str(), FLORENCE_HAILO_NAME_MAX - 1);
    const hailo_3d_image_shape_t shape = stream.shape();
    info.height = shape.height;
    info.width = shape.width;
    info.features = shape.features;
    info.frame_bytes = stream.get_frame_size();
    return info;
}

const florence_hailo_stream *find(const std::vector<florence_hailo_stream> &streams,
                                       const char *name)
{
    for (const auto &s : streams) {
        if (std::strncmp(s.name, name, FLORENCE_HAILO_NAME_MAX) == 0) {
            return &s;
        }
    }
    return nullptr;
}

// Checks a set of buffers against a model's streams: every stream bound
// exactly once, by a known name, with exactly its frame size.
hailo_status check_buffers(const std::vector<florence_hailo_stream> &streams,
                           const florence_hailo_buffer *buffers, uint32_t count)
{
    if (count != streams.size() || (count > 0 && buffers == nullptr)) {
        return HAILO_INVALID_ARGUMENT;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (buffers[i].name == nullptr || buffers[i].data == nullptr) {
            return HAILO_INVALID_ARGUMENT;
        }
        const florence_hailo_stream *s = find(streams, buffers[i].name);
        if (s == nullptr) {
            return HAILO_NOT_FOUND;
        }
        if (buffers[i].bytes != s->frame_bytes) {
            return HAILO_INVALID_ARGUMENT;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (std::strcmp(buffers[j].name, buffers[i].name) == 0) {
                return HAILO_INVALID_ARGUMENT;
            }
        }
    }
    return HAILO_SUCCESS;
}

} // namespace

extern "C" {

uint32_t florence_hailo_abi_version(void)
{
    return FLORENCE_HAILO_BRIDGE_ABI_VERSION;
}

uint32_t florence_hailo_hailort_major(void)
{
    return FLORENCE_HAILO_HAILORT_MAJOR;
}

florence_hailo_status florence_hailo_open_device(const char *group_id,
                                                 florence_hailo_device **device)
{
    return guarded([&]() -> hailo_status {
        if (device == nullptr) {
            return HAILO_INVALID_ARGUMENT;
        }
        *device = nullptr;
        auto state = std::make_shared<DeviceState>();
        hailo_vdevice_params_t params{};
        hailo_status status = hailo_init_vdevice_params(&params);
        if (status != HAILO_SUCCESS) {
            return status;
        }
        params.scheduling_algorithm = HAILO_SCHEDULING_ALGORITHM_ROUND_ROBIN;
        if (group_id != nullptr) {
            state->group_id = group_id;
            params.group_id = state->group_id.c_str();
        }
        params.multi_process_service = false;
        auto vdevice = hailort::VDevice::create(params);
        if (!vdevice) {
            return vdevice.status();
        }
        state->vdevice = vdevice.release();
        auto handle = std::make_unique<florence_hailo_device>();
        handle->state = std::move(state);
        *device = handle.release();
        return HAILO_SUCCESS;
    });
}

florence_hailo_status florence_hailo_load_model(florence_hailo_device *device,
                                                const char *hef_path,
                                                uint8_t scheduler_priority,
                                                florence_hailo_model **model)
{
    return guarded([&]() -> hailo_status {
        if (device == nullptr || hef_path == nullptr || model == nullptr) {
            return HAILO_INVALID_ARGUMENT;
        }
        *model = nullptr;
        auto infer_model = device->state->vdevice->create_infer_model(std::string(hef_path));
        if (!infer_model) {
            return infer_model.status();
        }
        std::shared_ptr<hailort::InferModel> im = infer_model.release();
        for (const auto &name : im->get_input_names()) {
            auto stream = im->input(name);
            if (!stream) {
                return stream.status();
            }
            stream->set_format_type(HAILO_FORMAT_TYPE_FLOAT32);
        }
        for (const auto &name : im->get_output_names()) {
            auto stream = im->output(name);
            if (!stream) {
                return stream.status();
            }
            stream->set_format_type(HAILO_FORMAT_TYPE_FLOAT32);
        }
        auto configured = im->configure();
        if (!configured) {
            return configured.status();
        }
        auto handle = std::make_unique<florence_hailo_model>();
        handle->device = device->state;
        handle->infer_model = im;
        handle->configured = configured.release();
        const hailo_status status = handle->configured.set_scheduler_priority(scheduler_priority);
        if (status != HAILO_SUCCESS) {
            return status;
        }
        for (const auto &stream : im->inputs()) {
            handle->inputs.push_back(describe(stream));
        }
        for (const auto &stream : im->outputs()) {
            handle->outputs.push_back(describe(stream));
        }
        *model = handle.release();
        return HAILO_SUCCESS;
    });
}

florence_hailo_status florence_hailo_stream_count(const florence_hailo_model *model,
                                                  uint32_t is_output, uint32_t *count)
{
    return guarded([&]() -> hailo_status {
        if (model == nullptr || count == nullptr) {
            return HAILO_INVALID_ARGUMENT;
        }
        *count = static_cast<uint32_t>(is_output ? model->outputs.size() : model->inputs.size());
        return HAILO_SUCCESS;
    });
}

florence_hailo_status florence_hailo_describe_stream(const florence_hailo_model *model,
                                                     uint32_t is_output, uint32_t index,
                                                     florence_hailo_stream *info)
{
    return guarded([&]() -> hailo_status {
        if (model == nullptr || info == nullptr) {
            return HAILO_INVALID_ARGUMENT;
        }
        const auto &streams = is_output ? model->outputs : model->inputs;
        if (index >= streams.size()) {
            return HAILO_NOT_FOUND;
        }
        *info = streams[index];
        return HAILO_SUCCESS;
    });
}

florence_hailo_status florence_hailo_run(florence_hailo_model *model,
                                         const florence_hailo_buffer *inputs,
                                         uint32_t input_count,
                                         const florence_hailo_buffer *outputs,
                                         uint32_t output_count, uint32_t timeout_ms)
{
    return guarded([&]() -> hailo_status {
        if (model == nullptr) {
            return HAILO_INVALID_ARGUMENT;
        }
        hailo_status status = check_buffers(model->inputs, inputs, input_count);
        if (status != HAILO_SUCCESS) {
            return status;
        }
        status = check_buffers(model->outputs, outputs, output_count);
        if (status != HAILO_SUCCESS) {
            return status;
        }
        auto bindings = model->configured.create_bindings();
        if (!bindings) {
            return bindings.status();
        }
        for (uint32_t i = 0; i < input_count; i++) {
            auto stream = bindings->input(inputs[i].name);
            if (!stream) {
                return stream.status();
            }
            status = stream->set_buffer(
                hailort::MemoryView(inputs[i].data, static_cast<size_t>(inputs[i].bytes)));
            if (status != HAILO_SUCCESS) {
                return status;
            }
        }
        for (uint32_t i = 0; i < output_count; i++) {
            auto stream = bindings->output(outputs[i].name);
            if (!stream) {
                return stream.status();
            }
            status = stream->set_buffer(
                hailort::MemoryView(outputs[i].data, static_cast<size_t>(outputs[i].bytes)));
            if (status != HAILO_SUCCESS) {
                return status;
            }
        }
        return model->configured.run(bindings.value(), std::chrono::milliseconds(timeout_ms));
    });
}

void florence_hailo_release_model(florence_hailo_model *model)
{
    try {
        delete model;
    } catch (...) {
        // A destructor that throws would end the process; nothing to report.
    }
}

void florence_hailo_release_device(florence_hailo_device *device)
{
    try {
        delete device;
    } catch (...) {
    }
}

} // extern "C"
