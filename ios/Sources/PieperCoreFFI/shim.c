/* Swift packages need one source file in a C target; the module's content
   is the generated header PieperCoreFFI.h (see Package.swift). */
