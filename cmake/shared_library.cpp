// The shared libvkssm (-DBUILD_SHARED_LIBS=ON, cmake/VkssmInstall.cmake) is the static vkssm
// library linked whole; a shared library target needs one source of its own, and this is it.
