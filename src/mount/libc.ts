/**
 * The C library, for the system calls Node has no binding for.
 *
 * koffi, a foreign-function interface that ships prebuilt for Node, calls C
 * functions directly: mount(2), ioctl(2), poll(2), xattrs, openat2 through
 * syscall(2). Each module declares the functions it needs on this one
 * handle.
 */
import koffi from "koffi";

export const libc = koffi.load("libc.so.6");
