// The emulator: runs a kernel launch on the CPU with the CUDA execution model's semantics.
//
// Blocks run one after another on the calling thread, in an order shuffled by the launch's
// seed, so code that assumes an order of blocks fails. The threads of a block are fibers (a
// context switch of our own on x86-64, `ucontext` elsewhere), each on its own stack, run in a
// seeded order: a thread runs until it reaches a barrier or a warp collective, or exits. A
// `__syncthreads` completes when every thread of the block has reached it; a warp collective
// (`__shfl*_sync`, `__ballot_sync`, `__syncwarp`) when every lane its mask names has. Static
// `__shared__` variables are block-scope `thread_local`s, so the fibers of a block share them.
//
// Misuse the hardware would punish is an error naming the kernel, block and thread: a barrier
// that some thread reaches at another call site, or after another thread exited; a collective
// whose mask leaves out the caller or names a lane that does not exist or has exited, or whose
// lanes meet at different call sites or with different masks; a shuffle reading a lane outside
// the mask; a deadlock; a block of more than 1024 threads or a grid beyond the hardware's
// dimensions; dynamic shared memory beyond what the kernel may use (48 KiB, or up to the
// opt-in maximum of an sm_90 GPU, 227 KiB, when the launcher raised the kernel's limit).
//
// Memory safety: every allocation (`gptoss_sim_alloc`) and every block's dynamic shared memory
// ends at a guard page, and every fiber stack starts above one. An access past the end faults;
// the fault handler jumps back to the block's scheduler, which reports it (which allocation,
// how far past its end) as the launch's error.
#include "runtime.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#include "include/gptoss_sim.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace gptoss_sim {
namespace {

constexpr unsigned kWarp = 32;
constexpr unsigned kMaxThreads = 1024;
// Per-block shared memory without an opt-in, and the most an sm_90 kernel may opt into.
constexpr size_t kDefaultShared = 48 * 1024;
constexpr size_t kMaxShared = 227 * 1024;
constexpr size_t kStackBytes = 64 * 1024;

size_t page_size() {
    static const size_t p = (size_t)sysconf(_SC_PAGESIZE);
    return p;
}

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

// ---- guarded memory --------------------------------------------------------------------------

// A mapping of `len` bytes whose usable part [data, data + bytes) lies between two guard
// pages, ending at the second.
struct Region {
    unsigned char *base;
    size_t len;
    unsigned char *data;
    size_t bytes;
};

bool map_guarded(size_t bytes, Region &r) {
    const size_t page = page_size(), body = round_up(bytes == 0 ? 1 : bytes, page);
    const size_t len = body + 2 * page;
    void *base = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return false;
    unsigned char *b = static_cast<unsigned char *>(base);
    if (mprotect(b + page, body, PROT_READ | PROT_WRITE) != 0) {
        munmap(base, len);
        return false;
    }
    r = Region{b, len, b + page + body - bytes, bytes};
    return true;
}

// Allocations by their usable start, for `free` and for naming a fault's allocation.
std::mutex g_regions_mutex;
std::map<unsigned char *, Region> &regions() {
    static std::map<unsigned char *, Region> m;
    return m;
}

// ---- context switch --------------------------------------------------------------------------

struct Fiber;

#if defined(__x86_64__)
// Saves the callee-saved registers, MXCSR and the x87 control word on the current stack,
// stores the stack pointer in *save, and resumes the context whose stack pointer is `to`.
extern "C" void gptoss_sim_switch(void **save, void *to);
extern "C" void gptoss_sim_start();
asm(R"(
    .text
    .globl gptoss_sim_switch
    .type gptoss_sim_switch, @function
gptoss_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gptoss_sim_switch, .-gptoss_sim_switch

    .globl gptoss_sim_start
    .type gptoss_sim_start, @function
gptoss_sim_start:
    movq %r12, %rdi
    call gptoss_sim_fiber_entry@PLT
    ud2
    .size gptoss_sim_start, .-gptoss_sim_start
)");
#endif

}  // namespace
}  // namespace gptoss_sim

extern "C" void gptoss_sim_fiber_entry(gptoss_sim::Fiber *f);

#if !defined(__x86_64__)
static void ucontext_entry(unsigned hi, unsigned lo) {
    gptoss_sim_fiber_entry(reinterpret_cast<gptoss_sim::Fiber *>(((uint64_t)hi << 32) | lo));
}
#endif

namespace gptoss_sim {
namespace {

enum class State : unsigned char { Ready, Barrier, Warp, Exited };

struct Collective;

// A cp.async copy not yet complete: committed to `group` (0: not yet committed).
struct Pending {
    unsigned char *dst;
    const unsigned char *src;
    unsigned src_bytes, bytes;
    unsigned long long group;
};

struct Fiber {
#if defined(__x86_64__)
    void *sp = nullptr;
#else
    ucontext_t ctx;
#endif
    unsigned char *stack = nullptr;  // usable stack: [stack, stack + kStackBytes)
    uint3 idx{};
    unsigned linear = 0;
    State state = State::Ready;
    Site site{};
    int predicate = 0, result = 0;
    unsigned long long out = 0;
    std::vector<Pending> copies;
    unsigned long long groups = 0;
};

// A warp collective in progress: the lanes that arrived, with their values and arguments.
struct Collective {
    Site site;
    Shuffle kind;
    unsigned mask, arrived;
    int width;
    unsigned long long value[kWarp];
    int arg[kWarp];
    // Exchange: each lane's bytes and where it wants everyone's.
    const void *mine[kWarp];
    void *all[kWarp];
    unsigned bytes;
};

bool same_site(Site a, Site b) { return a.line == b.line && strcmp(a.file, b.file) == 0; }

// What runs the blocks of one launch on this OS thread: the scheduler's context, the fiber
// stacks (kept for the next launch), the dynamic shared memory, and the current block.
struct Worker {
#if defined(__x86_64__)
    void *scheduler_sp = nullptr;
#else
    ucontext_t scheduler;
#endif
    std::vector<Region> stacks;
    Region shared{};
    bool shared_mapped = false;
    std::vector<Fiber> fibers;
    std::vector<Collective> collectives[kMaxThreads / kWarp];
    // The block being run.
    const Kernel *kernel = nullptr;
    const void *args = nullptr;
    uint3 block{};
    dim3 block_dim{}, grid_dim{};
    unsigned threads = 0, live = 0, at_barrier = 0;
    unsigned char *dynamic = nullptr;
    size_t dynamic_bytes = 0;
    Fiber *current = nullptr;
    std::string error;
    // Fault handling: where the handler jumps, and what it saw.
    sigjmp_buf fault_jump;
    volatile sig_atomic_t in_block = 0;
    void *fault_address = nullptr;

    ~Worker() {
        for (Region &s : stacks) munmap(s.base, s.len);
        if (shared_mapped) munmap(shared.base, shared.len);
    }
};

thread_local Worker t_worker;

[[noreturn]] void to_scheduler(Worker &w);

void fail(Worker &w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Records the block's first error, naming the kernel, block and current thread.
void fail(Worker &w, const char *fmt, ...) {
    if (!w.error.empty()) return;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char head[256];
    const Fiber *f = w.current;
    snprintf(head, sizeof head, "kernel %s, block (%u, %u, %u), thread (%u, %u, %u): ", w.kernel->name, w.block.x, w.block.y, w.block.z,
             f ? f->idx.x : 0, f ? f->idx.y : 0, f ? f->idx.z : 0);
    w.error = std::string(head) + what;
}

// Fails and abandons the block (its fibers never run again).
[[noreturn]] void abort_block(Worker &w) { to_scheduler(w); }

void describe(const Fiber &f, char *out, size_t len) { snprintf(out, len, "(%u, %u, %u)", f.idx.x, f.idx.y, f.idx.z); }

void yield(Worker &w) {
    Fiber *f = w.current;
#if defined(__x86_64__)
    gptoss_sim_switch(&f->sp, w.scheduler_sp);
#else
    swapcontext(&f->ctx, &w.scheduler);
#endif
}

[[noreturn]] void to_scheduler(Worker &w) {
    yield(w);
    __builtin_unreachable();
}

void start_fiber(Worker &w, Fiber &f) {
#if defined(__x86_64__)
    // The stack `gptoss_sim_switch` pops: control words, r15..r12 (r12: the fiber), rbx, rbp,
    // then the return address, placed so that the entry runs with a 16-byte aligned stack.
    uint64_t *top = reinterpret_cast<uint64_t *>(f.stack + kStackBytes);
    uint64_t *sp = top - 10;
    sp[0] = 0x1f80ull | (0x037full << 32);  // MXCSR (all exceptions masked), x87 control word
    sp[1] = sp[2] = sp[3] = 0;              // r15, r14, r13
    sp[4] = reinterpret_cast<uint64_t>(&f);  // r12
    sp[5] = sp[6] = 0;                      // rbx, rbp
    sp[7] = reinterpret_cast<uint64_t>(&gptoss_sim_start);
    sp[8] = sp[9] = 0;
    f.sp = sp;
    (void)w;
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &w.scheduler;
    // makecontext passes ints: the fiber's address in two halves.
    const uint64_t p = reinterpret_cast<uint64_t>(&f);
    makecontext(&f.ctx, reinterpret_cast<void (*)()>(&ucontext_entry), 2, (unsigned)(p >> 32), (unsigned)p);
#endif
}

void resume(Worker &w, Fiber &f) {
    w.current = &f;
#if defined(__x86_64__)
    gptoss_sim_switch(&w.scheduler_sp, f.sp);
#else
    swapcontext(&w.scheduler, &f.ctx);
#endif
    w.current = nullptr;
}

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// 0..n in an order drawn from `seed`.
void shuffled(std::vector<unsigned> &order, unsigned n, uint64_t seed) {
    order.resize(n);
    for (unsigned i = 0; i < n; i++) order[i] = i;
    for (unsigned i = n; i > 1; i--) {
        seed = mix(seed + 0x9E3779B97F4A7C15ull);
        std::swap(order[i - 1], order[seed % i]);
    }
}

// ---- barriers --------------------------------------------------------------------------------

// Diagnoses a block in which no thread can run: some wait at a barrier, some in collectives.
void deadlock(Worker &w) {
    std::string waits;
    for (unsigned i = 0; i < w.threads && waits.size() < 400; i++) {
        const Fiber &f = w.fibers[i];
        if (f.state == State::Barrier || f.state == State::Warp) {
            char who[64], line[200];
            describe(f, who, sizeof who);
            snprintf(line, sizeof line, "%sthread %s at %s %s:%d", waits.empty() ? "" : "; ", who,
                     f.state == State::Barrier ? "__syncthreads" : "a warp collective", f.site.file, f.site.line);
            waits += line;
        }
    }
    w.current = nullptr;
    fail(w, "deadlock: no thread can go on (%s)", waits.c_str());
}

void release_barrier(Worker &w, Reduce reduce) {
    int count = 0, all = 1, any = 0;
    Site first{};
    bool have_first = false;
    for (unsigned i = 0; i < w.threads; i++) {
        const Fiber &f = w.fibers[i];
        if (f.state != State::Barrier) continue;
        if (!have_first) first = f.site, have_first = true;
        if (!same_site(f.site, first)) {
            char a[64];
            describe(f, a, sizeof a);
            fail(w, "divergent __syncthreads: reached at %s:%d, but thread %s waits at %s:%d", first.file, first.line, a, f.site.file,
                 f.site.line);
            abort_block(w);
        }
        count += f.predicate, all &= f.predicate, any |= f.predicate;
    }
    const int result = reduce == Reduce::Or ? any : reduce == Reduce::And ? all : reduce == Reduce::Count ? count : 0;
    for (unsigned i = 0; i < w.threads; i++) {
        Fiber &f = w.fibers[i];
        if (f.state == State::Barrier) f.state = State::Ready, f.result = result;
    }
    w.at_barrier = 0;
}

// ---- warp collectives ------------------------------------------------------------------------

void complete(Worker &w, unsigned warp, Collective &c) {
    const unsigned base = warp * kWarp;
    for (unsigned lane = 0; lane < kWarp; lane++) {
        if (!(c.mask >> lane & 1u)) continue;
        Fiber &f = w.fibers[base + lane];
        const unsigned seg = lane & ~(unsigned)(c.width - 1), end = seg + (unsigned)c.width;
        unsigned long long out = c.value[lane];
        long src = -1;
        switch (c.kind) {
            case Shuffle::Index: src = (long)seg + (c.arg[lane] & (c.width - 1)); break;
            case Shuffle::Xor: {
                const unsigned s = lane ^ (unsigned)c.arg[lane];
                // A lane of a later segment gives the caller's own value.
                src = s >= end ? lane : (long)s;
                break;
            }
            case Shuffle::Up: src = (long)lane - c.arg[lane] < (long)seg ? lane : (long)lane - c.arg[lane]; break;
            case Shuffle::Down: src = lane + (unsigned)c.arg[lane] >= end ? lane : (long)lane + c.arg[lane]; break;
            case Shuffle::Ballot:
                out = 0;
                for (unsigned l = 0; l < kWarp; l++)
                    if ((c.mask >> l & 1u) && c.value[l]) out |= 1ull << l;
                break;
            case Shuffle::Sync: break;
            case Shuffle::Exchange:
                for (unsigned l = 0; l < kWarp; l++)
                    memcpy(static_cast<unsigned char *>(c.all[lane]) + (size_t)l * c.bytes, c.mine[l], c.bytes);
                break;
        }
        if (src >= 0) {
            if (src >= (long)kWarp || !(c.mask >> src & 1u)) {
                w.current = &f;
                fail(w, "%s:%d: the shuffle reads lane %ld, which its mask 0x%08x leaves out", c.site.file, c.site.line, src, c.mask);
                abort_block(w);
            }
            out = c.value[src];
        }
        f.out = out;
        f.state = State::Ready;
    }
}

}  // namespace

// ---- the kernels' side: built-in variables and collectives ------------------------------------

const uint3 &thread_idx() { return t_worker.current->idx; }
unsigned int thread_lane() { return t_worker.current->linear % kWarp; }
const uint3 &block_idx() { return t_worker.block; }
const dim3 &block_dim() { return t_worker.block_dim; }
const dim3 &grid_dim() { return t_worker.grid_dim; }
unsigned char *dynamic_shared_memory() { return t_worker.dynamic; }

int barrier(Site site, Reduce reduce, int predicate) {
    Worker &w = t_worker;
    Fiber &f = *w.current;
    if (w.live < w.threads) {
        for (unsigned i = 0; i < w.threads; i++) {
            if (w.fibers[i].state != State::Exited) continue;
            char who[64];
            describe(w.fibers[i], who, sizeof who);
            fail(w, "__syncthreads at %s:%d, but thread %s exited before reaching it", site.file, site.line, who);
            abort_block(w);
        }
    }
    f.state = State::Barrier, f.site = site, f.predicate = predicate;
    if (++w.at_barrier == w.live) release_barrier(w, reduce);
    yield(w);
    return f.result;
}

unsigned int active_mask() {
    Worker &w = t_worker;
    const unsigned base = w.current->linear / kWarp * kWarp;
    unsigned mask = 0;
    for (unsigned l = 0; l < kWarp && base + l < w.threads; l++)
        if (w.fibers[base + l].state != State::Exited) mask |= 1u << l;
    return mask;
}

namespace {
unsigned long long collective(Site site, Shuffle kind, unsigned int mask, unsigned long long value, int lane_arg, int width,
                              const void *mine, void *all, unsigned bytes);
}

unsigned long long warp_collective(Site site, Shuffle kind, unsigned int mask, unsigned long long value, int lane_arg, int width) {
    return collective(site, kind, mask, value, lane_arg, width, nullptr, nullptr, 0);
}

void warp_exchange(Site site, const void *mine, unsigned bytes, void *all) {
    collective(site, Shuffle::Exchange, 0xffffffffu, 0, 0, 32, mine, all, bytes);
}

void cp_async(void *dst, const void *src, unsigned src_bytes, unsigned bytes) {
    t_worker.current->copies.push_back(
        Pending{static_cast<unsigned char *>(dst), static_cast<const unsigned char *>(src), src_bytes, bytes, 0});
}

void cp_async_commit() {
    Fiber &f = *t_worker.current;
    f.groups++;
    for (Pending &p : f.copies)
        if (p.group == 0) p.group = f.groups;
}

void cp_async_wait(int pending) {
    Fiber &f = *t_worker.current;
    const unsigned long long upto = f.groups > (unsigned long long)pending ? f.groups - pending : 0;
    size_t kept = 0;
    for (Pending &p : f.copies) {
        if (p.group != 0 && p.group <= upto) {
            memcpy(p.dst, p.src, p.src_bytes);
            memset(p.dst + p.src_bytes, 0, p.bytes - p.src_bytes);
        } else {
            f.copies[kept++] = p;
        }
    }
    f.copies.resize(kept);
}

namespace {
unsigned long long collective(Site site, Shuffle kind, unsigned int mask, unsigned long long value, int lane_arg, int width,
                              const void *mine, void *all, unsigned bytes) {
    Worker &w = t_worker;
    Fiber &f = *w.current;
    const unsigned warp = f.linear / kWarp, lane = f.linear % kWarp, base = warp * kWarp;
    if (!(mask >> lane & 1u)) {
        fail(w, "%s:%d: the collective's mask 0x%08x leaves out the calling lane %u", site.file, site.line, mask, lane);
        abort_block(w);
    }
    if (width < 1 || width > (int)kWarp || (width & (width - 1))) {
        fail(w, "%s:%d: shuffle width %d is not a power of two up to 32", site.file, site.line, width);
        abort_block(w);
    }
    for (unsigned l = 0; l < kWarp; l++) {
        if (!(mask >> l & 1u)) continue;
        if (base + l >= w.threads) {
            fail(w, "%s:%d: the collective's mask 0x%08x names lane %u, which the block of %u threads does not have", site.file, site.line,
                 mask, l, w.threads);
            abort_block(w);
        }
        if (w.fibers[base + l].state == State::Exited) {
            fail(w, "%s:%d: the collective's mask 0x%08x names lane %u, which has exited", site.file, site.line, mask, l);
            abort_block(w);
        }
    }
    std::vector<Collective> &open = w.collectives[warp];
    Collective *c = nullptr;
    for (Collective &o : open)
        if (o.mask >> lane & 1u) c = &o;
    if (c == nullptr) {
        open.push_back(Collective{site, kind, mask, 0, width, {}, {}, {}, {}, bytes});
        c = &open.back();
    } else if (!same_site(c->site, site) || c->kind != kind || c->mask != mask || c->width != width || c->bytes != bytes ||
               (c->arrived >> lane & 1u)) {
        fail(w, "divergent warp collectives: lane %u is at %s:%d (mask 0x%08x) while lanes of its warp wait at %s:%d (mask 0x%08x)", lane,
             site.file, site.line, mask, c->site.file, c->site.line, c->mask);
        abort_block(w);
    }
    c->value[lane] = value, c->arg[lane] = lane_arg, c->mine[lane] = mine, c->all[lane] = all, c->arrived |= 1u << lane;
    f.state = State::Warp, f.site = site;
    if (c->arrived == c->mask) {
        complete(w, warp, *c);
        open.erase(open.begin() + (c - open.data()));
    }
    yield(w);
    return f.out;
}
}  // namespace

namespace {

// ---- faults ----------------------------------------------------------------------------------

struct sigaction g_previous_segv, g_previous_bus;

void on_fault(int sig, siginfo_t *info, void *context) {
    Worker &w = t_worker;
    if (w.in_block) {
        w.in_block = 0;
        w.fault_address = info->si_addr;
        siglongjmp(w.fault_jump, 1);
    }
    // Not a kernel's: the handler that was there before.
    struct sigaction &prev = sig == SIGBUS ? g_previous_bus : g_previous_segv;
    if (prev.sa_flags & SA_SIGINFO) {
        prev.sa_sigaction(sig, info, context);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(sig);
    } else {
        signal(sig, SIG_DFL);  // returning re-runs the access, which now ends the process
    }
}

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &g_previous_segv);
        sigaction(SIGBUS, &sa, &g_previous_bus);
    });
}

// An alternate signal stack for this thread unless it has one (the handler must not run on a
// fiber stack that just overflowed).
void ensure_signal_stack() {
    thread_local std::vector<unsigned char> own;
    stack_t current;
    if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;
    own.resize(64 * 1024);
    stack_t s{};
    s.ss_sp = own.data();
    s.ss_size = own.size();
    sigaltstack(&s, nullptr);
}

// Names what a faulting address hit.
void describe_fault(Worker &w) {
    unsigned char *a = static_cast<unsigned char *>(w.fault_address);
    if (w.dynamic && a >= w.dynamic && a < w.shared.data + w.shared.bytes + page_size()) {
        fail(w, "access %zu bytes into the block's dynamic shared memory, past the launch's %zu bytes", (size_t)(a - w.dynamic),
             w.dynamic_bytes);
        return;
    }
    for (unsigned i = 0; i < w.threads; i++) {
        if (a >= w.stacks[i].base && a < w.stacks[i].data) {
            fail(w, "stack overflow of thread (%u, %u, %u) (the emulator gives each %zu KiB)", w.fibers[i].idx.x, w.fibers[i].idx.y,
                 w.fibers[i].idx.z, kStackBytes / 1024);
            return;
        }
    }
    std::lock_guard<std::mutex> lock(g_regions_mutex);
    for (const auto &[start, r] : regions()) {
        if (a >= r.base && a < r.base + r.len) {
            if (a >= r.data + r.bytes)
                fail(w, "out-of-bounds access %zu bytes past the end of a %zu-byte allocation at %p", (size_t)(a - (r.data + r.bytes)),
                     r.bytes, (void *)r.data);
            else
                fail(w, "out-of-bounds access %zu bytes before a %zu-byte allocation at %p", (size_t)(r.data - a), r.bytes, (void *)r.data);
            return;
        }
    }
    fail(w, "invalid memory access at %p (not device memory of this process)", (void *)a);
}

// ---- a block --------------------------------------------------------------------------------

bool prepare_worker(Worker &w, unsigned threads, size_t shared_bytes) {
    while (w.stacks.size() < threads) {
        Region r;
        if (!map_guarded(kStackBytes, r)) return false;
        // Stacks grow down: the usable part starts right above the lower guard page.
        r.data = r.base + page_size();
        w.stacks.push_back(r);
    }
    if (!w.shared_mapped) {
        if (!map_guarded(kMaxShared, w.shared)) return false;
        w.shared_mapped = true;
    }
    // The launch's dynamic shared memory ends at the guard page.
    w.dynamic_bytes = shared_bytes;
    w.dynamic = shared_bytes ? w.shared.data + w.shared.bytes - round_up(shared_bytes, 16) : nullptr;
    w.fibers.resize(threads);
    return true;
}

// Runs block `linear` of the launch; false with `w.error` set on an error.
bool run_block(Worker &w, unsigned linear, const GptossSimLaunch &l, uint64_t seed) {
    const unsigned gx = l.grid[0], gy = l.grid[1];
    w.block = uint3{linear % gx, linear / gx % gy, linear / (gx * gy)};
    const unsigned bx = l.block[0], by = l.block[1];
    w.live = w.threads;
    w.at_barrier = 0;
    for (auto &c : w.collectives) c.clear();
    for (unsigned i = 0; i < w.threads; i++) {
        Fiber &f = w.fibers[i];
        f = Fiber{};
        f.stack = w.stacks[i].data;
        f.linear = i;
        f.idx = uint3{i % bx, i / bx % by, i / (bx * by)};
        start_fiber(w, f);
    }
    std::vector<unsigned> order;
    shuffled(order, w.threads, seed);
    if (sigsetjmp(w.fault_jump, 1) != 0) {
        describe_fault(w);
        return false;
    }
    w.in_block = 1;
    for (;;) {
        bool ran = false;
        for (unsigned i : order) {
            Fiber &f = w.fibers[i];
            if (f.state != State::Ready) continue;
            resume(w, f);
            ran = true;
            if (!w.error.empty()) {
                w.in_block = 0;
                return false;
            }
        }
        if (w.live == 0) break;
        if (!ran) {
            deadlock(w);
            w.in_block = 0;
            return false;
        }
    }
    w.in_block = 0;
    return true;
}

std::atomic<uint64_t> g_launches{0};
// Launches per kernel, for the report.
std::mutex g_counts_mutex;
std::map<std::string, uint64_t> g_counts;

void count_launch(const Kernel *k) {
    g_launches.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(g_counts_mutex);
    g_counts[k->name]++;
}

// With GPTOSS_SIM_REPORT=1, the launches the process ran, per kernel, on stderr at exit (a
// process that launched nothing says nothing: its stderr stays its own).
struct Report {
    ~Report() {
        const char *v = getenv("GPTOSS_SIM_REPORT");
        if (!v || strcmp(v, "1") != 0 || g_launches.load() == 0) return;
        fprintf(stderr, "cuda-sim: %llu kernel launches emulated\n", (unsigned long long)g_launches.load());
        std::lock_guard<std::mutex> lock(g_counts_mutex);
        for (const auto &[name, count] : g_counts) fprintf(stderr, "cuda-sim: %8llu  %s\n", (unsigned long long)count, name.c_str());
    }
} g_report;

}  // namespace
}  // namespace gptoss_sim

// A fiber's life: the kernel, then the exit checks, then back to the scheduler for good.
extern "C" void gptoss_sim_fiber_entry(gptoss_sim::Fiber *f) {
    using namespace gptoss_sim;
    Worker &w = t_worker;
    w.kernel->thunk(w.args);
    f->state = State::Exited;
    w.live--;
    if (w.at_barrier > 0) {
        fail(w, "exited while other threads of the block wait at __syncthreads");
        abort_block(w);
    }
    const unsigned warp = f->linear / kWarp, lane = f->linear % kWarp;
    for (const Collective &c : w.collectives[warp]) {
        if (c.mask >> lane & 1u) {
            fail(w, "exited while lanes of its warp wait for it at %s:%d (mask 0x%08x)", c.site.file, c.site.line, c.mask);
            abort_block(w);
        }
    }
    to_scheduler(w);
}

using namespace gptoss_sim;

extern "C" const Module *const gptoss_sim_modules[];

extern "C" const Kernel *gptoss_sim_find(const char *module, const char *name) {
    for (const Module *const *m = gptoss_sim_modules; *m; m++) {
        if (strcmp((*m)->name, module) != 0) continue;
        for (size_t i = 0; i < (*m)->count; i++)
            if (strcmp((*m)->kernels[i].name, name) == 0) return &(*m)->kernels[i];
    }
    return nullptr;
}

extern "C" int gptoss_sim_launch(const Kernel *kernel, const GptossSimLaunch *l, const void *args, size_t args_size, char *error,
                                 size_t error_len) {
    auto refuse = [&](const char *fmt, auto... v) {
        char what[400];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"
        snprintf(what, sizeof what, fmt, v...);
#pragma GCC diagnostic pop
        snprintf(error, error_len, "kernel %s: %s", kernel->name, what);
        return 1;
    };
    if (args_size != kernel->args_size)
        return refuse("launched with an argument struct of %zu bytes; the kernel takes %zu", args_size, kernel->args_size);
    const unsigned bx = l->block[0], by = l->block[1], bz = l->block[2];
    const uint64_t threads = (uint64_t)bx * by * bz;
    if (bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 || threads > kMaxThreads)
        return refuse("a block of %u × %u × %u threads (at most 1024 in all; x, y ≤ 1024, z ≤ 64)", bx, by, bz);
    const unsigned gx = l->grid[0], gy = l->grid[1], gz = l->grid[2];
    if (gx == 0 || gy == 0 || gz == 0 || gx > 0x7fffffffu || gy > 65535 || gz > 65535)
        return refuse("a grid of %u × %u × %u blocks (x ≤ 2^31 − 1, y, z ≤ 65535, none 0)", gx, gy, gz);
    const size_t allowed = std::min(std::max((size_t)l->max_shared_bytes, kDefaultShared), kMaxShared);
    if (l->shared_bytes > allowed)
        return refuse("%llu bytes of dynamic shared memory, more than the %zu the kernel may use%s", (unsigned long long)l->shared_bytes,
                      allowed, allowed < kMaxShared ? " (raise its limit first, up to 227 KiB)" : "");
    install_fault_handler();
    ensure_signal_stack();
    Worker &w = t_worker;
    if (!prepare_worker(w, (unsigned)threads, l->shared_bytes)) return refuse("the host has no memory for the block's stacks");
    w.kernel = kernel, w.args = args;
    w.threads = (unsigned)threads;
    w.block_dim = dim3{bx, by, bz}, w.grid_dim = dim3{gx, gy, gz};
    w.error.clear();
    count_launch(kernel);
    const uint64_t blocks = (uint64_t)gx * gy * gz;
    // Blocks in an order drawn from the seed without a table (grids reach 2^31 blocks): from a
    // seeded start, a seeded stride co-prime with the count visits each block once.
    uint64_t stride = mix(l->seed) % blocks | 1;
    while (std::gcd(stride, blocks) != 1) stride += 2;
    const uint64_t start = mix(l->seed ^ 0x5bd1e995ull) % blocks;
    for (uint64_t i = 0; i < blocks; i++) {
        const unsigned linear = (unsigned)((start + i * stride) % blocks);
        if (!run_block(w, linear, *l, mix(l->seed + linear))) {
            snprintf(error, error_len, "%s", w.error.c_str());
            w.kernel = nullptr;
            return 1;
        }
    }
    w.kernel = nullptr;
    return 0;
}

extern "C" void *gptoss_sim_alloc(size_t bytes) {
    Region r;
    if (!map_guarded(round_up(bytes == 0 ? 16 : bytes, 16), r)) return nullptr;
    std::lock_guard<std::mutex> lock(g_regions_mutex);
    regions()[r.data] = r;
    return r.data;
}

extern "C" void gptoss_sim_free(void *p) {
    std::lock_guard<std::mutex> lock(g_regions_mutex);
    auto it = regions().find(static_cast<unsigned char *>(p));
    if (it == regions().end()) return;
    munmap(it->second.base, it->second.len);
    regions().erase(it);
}

extern "C" uint64_t gptoss_sim_launches(void) { return g_launches.load(std::memory_order_relaxed); }
