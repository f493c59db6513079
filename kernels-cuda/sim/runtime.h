// The emulator's interface: the kernel tables the build generates per `.cu` file, and the C
// functions the Rust side (`src/sim.rs`) calls. See `runtime.cpp` for how a launch runs.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

namespace gptoss_sim {

// One kernel of a module: its name as in the PTX, a thunk that calls it with its argument
// struct, and that struct's size (checked against what the launcher passes).
struct Kernel {
    const char *name;
    void (*thunk)(const void *args);
    size_t args_size;
};

// The kernels of one `cuda/*.cu` file.
struct Module {
    const char *name;
    const Kernel *kernels;
    size_t count;
};

template <class A>
A argument_of(void (*)(A));

// Calls kernel `F` with the argument struct at `args`.
template <auto F>
void thunk(const void *args) {
    using A = std::remove_cv_t<decltype(argument_of(F))>;
    F(*static_cast<const A *>(args));
}

template <auto F>
constexpr size_t args_size() {
    return sizeof(std::remove_cv_t<decltype(argument_of(F))>);
}

}  // namespace gptoss_sim

#define GPTOSS_SIM_KERNEL(name) {#name, &::gptoss_sim::thunk<&name>, ::gptoss_sim::args_size<&name>()}

extern "C" {

// A launch: the grid and block dimensions, the dynamic shared memory and the most the kernel
// was allowed (by the launcher's opt-in), and the seed of the block and thread orders.
struct GptossSimLaunch {
    uint32_t grid[3];
    uint32_t block[3];
    uint64_t shared_bytes;
    uint64_t max_shared_bytes;
    uint64_t seed;
};

// The kernel `name` of module `module`, or null.
const gptoss_sim::Kernel *gptoss_sim_find(const char *module, const char *name);
// Runs a whole launch; 0, or 1 with a message in `error` (kernel, block, thread, what).
int gptoss_sim_launch(const gptoss_sim::Kernel *kernel, const GptossSimLaunch *launch, const void *args, size_t args_size, char *error,
                      size_t error_len);
// Device memory: `bytes` (rounded up to 16) ending at a guard page, after a guard page; null
// when the host has none to give.
void *gptoss_sim_alloc(size_t bytes);
void gptoss_sim_free(void *p);
// Launches run since the process started.
uint64_t gptoss_sim_launches(void);
}
