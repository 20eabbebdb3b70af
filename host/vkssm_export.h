/* VKSSM_API marks the public C and C++ API: the only symbols a shared libvkssm exports (the
 * library is compiled with hidden visibility). Installed as <vkssm/host/vkssm_export.h>; the
 * public headers include it by a path relative to themselves, so it works in the source tree and
 * installed. A static library needs nothing; a consumer of a Windows DLL defines VKSSM_SHARED. */
#ifndef VKSSM_EXPORT_H
#define VKSSM_EXPORT_H

#if defined(_WIN32)
#  if defined(VKSSM_BUILDING_SHARED)
#    define VKSSM_API __declspec(dllexport)
#  elif defined(VKSSM_SHARED)
#    define VKSSM_API __declspec(dllimport)
#  else
#    define VKSSM_API
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define VKSSM_API __attribute__((visibility("default")))
#else
#  define VKSSM_API
#endif

#endif /* VKSSM_EXPORT_H */
