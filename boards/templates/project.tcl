
# ---- the flow (the same for every rtlgen board package; the settings above are this build's) ----
#
#   vivado -mode batch -source project.tcl -tclargs [-jobs N] [-clock MHZ] [-no-board-part] [-bd-only]
#
# -jobs N          parallel synthesis/implementation jobs (default 4)
# -clock MHZ       PL clock of the network and the DMA (default: the board's, above)
# -no-board-part   create the project at the plain part even when the board files are installed
# -bd-only         stop after the block design validates (quick check, no synthesis)
#
# Steps: project at the part (board part when its board files are installed), the IP repository
# ip/ (the network as <top>_axis_dma: batch TLAST, buses padded to DMA widths), block design with
# the processor, an AXI DMA in simple mode whose MM2S/S2MM widths are the IP's s_axis/m_axis
# widths, clocking and reset, address assignment, validate_bd_design, wrapper, bitstream,
# write_hw_platform -fixed -include_bit, and deploy/<name>.bit, .hwh, .xsa. Any failure ends the
# script with one line "rtlgen: ..." on stderr and exit status 1.

proc rtlgen_fail {msg} {
    puts stderr "rtlgen: $msg"
    exit 1
}

proc rtlgen_note {msg} {
    puts "rtlgen: $msg"
}

set jobs 4
set use_board_files 1
set bd_only 0
for {set i 0} {$i < $argc} {incr i} {
    set a [lindex $argv $i]
    switch -exact -- $a {
        -jobs { incr i; set jobs [lindex $argv $i] }
        -clock { incr i; set clock_mhz [lindex $argv $i] }
        -no-board-part { set use_board_files 0 }
        -bd-only { set bd_only 1 }
        default { rtlgen_fail "unknown argument '$a' (expected -jobs N, -clock MHZ, -no-board-part or -bd-only)" }
    }
}
if {![string is integer -strict $jobs] || $jobs < 1} {
    rtlgen_fail "-jobs takes a positive integer, not '$jobs'"
}
if {![string is double -strict $clock_mhz] || $clock_mhz <= 0 || $clock_mhz > $max_clock_mhz} {
    rtlgen_fail "-clock takes a frequency in MHz between 0 and $max_clock_mhz, not '$clock_mhz'"
}
foreach {what w} [list "MM2S (input)" $mm2s_width "S2MM (output)" $s2mm_width] {
    if {[lsearch -exact {8 16 32 64 128 256 512 1024} $w] < 0} {
        rtlgen_fail "the AXI DMA's $what stream width must be a power of two from 8 to 1024 bits, not $w"
    }
}

set proj_dir [file join $here vivado]
set deploy_dir [file join $here deploy]
file mkdir $proj_dir

if {[catch {
    # -- project: the board part when its board files are installed, the plain part otherwise --
    create_project -force $project_name $proj_dir -part $part
    set board_part_used ""
    if {$use_board_files && $board_part ne ""} {
        set base [join [lrange [split $board_part :] 0 2] :]
        set found [lsort [get_board_parts -quiet "${base}:*"]]
        if {[llength $found] > 0} {
            set board_part_used [lindex $found end]
            set_property board_part $board_part_used [current_project]
        }
    }
    if {$board_part_used ne ""} {
        rtlgen_note "board part $board_part_used (the processor takes the board's presets)"
    } else {
        rtlgen_note "no board files for $board_part: project at the plain part $part. $no_board_note"
    }

    # -- the network's IP --
    set_property ip_repo_paths [list [file join $here ip]] [current_project]
    update_ip_catalog -rebuild
    if {[llength [get_ipdefs -quiet $ip_vlnv]] == 0} {
        rtlgen_fail "the IP $ip_vlnv is not in [file join $here ip]; regenerate this package (rtlgen deploy OUT --board $board_name)"
    }

    create_bd_design $bd_name
    set nn [create_bd_cell -type ip -vlnv $ip_vlnv nn_0]
    # The DMA widths below were derived from these: stop if the repository holds another build.
    foreach {intf want} [list s_axis $ip_in_width m_axis $ip_out_width] {
        set got [get_property CONFIG.TDATA_NUM_BYTES [get_bd_intf_pins $nn/$intf]]
        if {$got ne "" && 8 * $got != $want} {
            rtlgen_fail "$ip_vlnv has a [expr {8 * $got}]-bit $intf, not $want bits as this package expects; regenerate the package"
        }
    }

    # -- processor, clock and reset --
    switch -exact -- $processor {
        ps7 {
            set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7 processing_system7_0]
            apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
                -config [list make_external "FIXED_IO, DDR" apply_board_preset [expr {$board_part_used ne "" ? 1 : 0}] Master Disable Slave Disable] $ps
            set_property -dict [list CONFIG.PCW_USE_M_AXI_GP0 1 CONFIG.PCW_USE_S_AXI_HP0 1 CONFIG.PCW_S_AXI_HP0_DATA_WIDTH 64 \
                CONFIG.PCW_EN_CLK0_PORT 1 CONFIG.PCW_EN_RST0_PORT 1 CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz] $ps
            set clk [get_bd_pins $ps/FCLK_CLK0]
            set rst_src [get_bd_pins $ps/FCLK_RESET0_N]
            set ctrl_master [get_bd_intf_pins $ps/M_AXI_GP0]
            set mem_slave [get_bd_intf_pins $ps/S_AXI_HP0]
            set ps_clocks [list $ps/M_AXI_GP0_ACLK $ps/S_AXI_HP0_ACLK]
            set data_space $ps/Data
        }
        zynq_us {
            set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ultra_ps_e_0]
            apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e \
                -config [list apply_board_preset [expr {$board_part_used ne "" ? 1 : 0}]] $ps
            set_property -dict [list CONFIG.PSU__USE__M_AXI_GP0 1 CONFIG.PSU__USE__M_AXI_GP1 0 CONFIG.PSU__USE__M_AXI_GP2 0 \
                CONFIG.PSU__USE__S_AXI_GP2 1 CONFIG.PSU__FPGA_PL0_ENABLE 1 \
                CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clock_mhz] $ps
            set clk [get_bd_pins $ps/pl_clk0]
            set rst_src [get_bd_pins $ps/pl_resetn0]
            set ctrl_master [get_bd_intf_pins $ps/M_AXI_HPM0_FPD]
            set mem_slave [get_bd_intf_pins $ps/S_AXI_HP0_FPD]
            set ps_clocks [list $ps/maxihpm0_fpd_aclk $ps/saxihp0_fpd_aclk]
            set data_space $ps/Data
        }
        microblaze {
            # The board's oscillator and reset button through the pins in constraints.xdc.
            create_bd_port -dir I -type clk -freq_hz [expr {int($sys_clock_mhz * 1000000)}] sys_clock
            create_bd_port -dir I -type rst reset
            set_property CONFIG.POLARITY $reset_polarity [get_bd_ports reset]
            set clkwiz [create_bd_cell -type ip -vlnv xilinx.com:ip:clk_wiz clk_wiz_0]
            set_property -dict [list CONFIG.PRIM_IN_FREQ $sys_clock_mhz CONFIG.CLKOUT1_REQUESTED_OUT_FREQ $clock_mhz \
                CONFIG.USE_LOCKED true CONFIG.RESET_TYPE $reset_polarity \
                CONFIG.RESET_PORT [expr {$reset_polarity eq "ACTIVE_LOW" ? "resetn" : "reset"}]] $clkwiz
            connect_bd_net [get_bd_ports sys_clock] [get_bd_pins $clkwiz/clk_in1]
            connect_bd_net [get_bd_ports reset] [get_bd_pins $clkwiz/[expr {$reset_polarity eq "ACTIVE_LOW" ? "resetn" : "reset"}]]
            set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:microblaze microblaze_0]
            apply_bd_automation -rule xilinx.com:bd_rule:microblaze \
                -config [list local_mem "${local_memory_kb}KB" ecc None cache None debug_module "Debug Only" \
                         axi_periph Disabled axi_intc 0 clk "/clk_wiz_0/clk_out1 ($clock_mhz MHz)"] $ps
            set_property CONFIG.C_D_AXI 1 $ps
            set clk [get_bd_pins $clkwiz/clk_out1]
            set rst_src [get_bd_ports reset]
            set ctrl_master [get_bd_intf_pins $ps/M_AXI_DP]
            set mem_slave ""
            set ps_clocks [list]
            set data_space $ps/Data
            # UART Lite (the board's USB-UART), AXI timer, block RAM for the DMA buffers.
            set uart [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_uartlite axi_uartlite_0]
            set_property -dict [list CONFIG.C_BAUDRATE $uart_baud] $uart
            create_bd_intf_port -mode Master -vlnv xilinx.com:interface:uart_rtl:1.0 uart
            connect_bd_intf_net [get_bd_intf_ports uart] [get_bd_intf_pins $uart/UART]
            set timer [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_timer axi_timer_0]
            set bram_ctrl [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_bram_ctrl axi_bram_ctrl_0]
            set_property -dict [list CONFIG.SINGLE_PORT_BRAM 1 CONFIG.DATA_WIDTH 32] $bram_ctrl
            set bram [create_bd_cell -type ip -vlnv xilinx.com:ip:blk_mem_gen dma_buffers]
            connect_bd_intf_net [get_bd_intf_pins $bram_ctrl/BRAM_PORTA] [get_bd_intf_pins $bram/BRAM_PORTA]
        }
        default { rtlgen_fail "unknown processor '$processor'" }
    }

    set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset rst_0]
    connect_bd_net $clk [get_bd_pins $rst/slowest_sync_clk]
    connect_bd_net $rst_src [get_bd_pins $rst/ext_reset_in]
    if {$processor eq "microblaze"} {
        connect_bd_net [get_bd_pins $clkwiz/locked] [get_bd_pins $rst/dcm_locked]
    }

    # -- the AXI DMA, simple mode, stream widths = the IP's --
    set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma axi_dma_0]
    set_property -dict [list CONFIG.c_include_sg 0 CONFIG.c_sg_include_stscntrl_strm 0 \
        CONFIG.c_sg_length_width $dma_length_width CONFIG.c_addr_width $dma_addr_width \
        CONFIG.c_m_axis_mm2s_tdata_width $mm2s_width CONFIG.c_s_axis_s2mm_tdata_width $s2mm_width \
        CONFIG.c_m_axi_mm2s_data_width $mm2s_mm_width CONFIG.c_m_axi_s2mm_data_width $s2mm_mm_width \
        CONFIG.c_mm2s_burst_size 16 CONFIG.c_s2mm_burst_size 16] $dma
    connect_bd_intf_net [get_bd_intf_pins $dma/M_AXIS_MM2S] [get_bd_intf_pins $nn/s_axis]
    connect_bd_intf_net [get_bd_intf_pins $nn/m_axis] [get_bd_intf_pins $dma/S_AXIS_S2MM]

    # -- interconnects: processor -> control registers; DMA -> memory --
    if {$processor eq "microblaze"} {
        set sc [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect axi_sc_0]
        set_property -dict [list CONFIG.NUM_SI 3 CONFIG.NUM_MI 4] $sc
        connect_bd_intf_net $ctrl_master [get_bd_intf_pins $sc/S00_AXI]
        connect_bd_intf_net [get_bd_intf_pins $dma/M_AXI_MM2S] [get_bd_intf_pins $sc/S01_AXI]
        connect_bd_intf_net [get_bd_intf_pins $dma/M_AXI_S2MM] [get_bd_intf_pins $sc/S02_AXI]
        connect_bd_intf_net [get_bd_intf_pins $sc/M00_AXI] [get_bd_intf_pins $dma/S_AXI_LITE]
        connect_bd_intf_net [get_bd_intf_pins $sc/M01_AXI] [get_bd_intf_pins $uart/S_AXI]
        connect_bd_intf_net [get_bd_intf_pins $sc/M02_AXI] [get_bd_intf_pins $timer/S_AXI]
        connect_bd_intf_net [get_bd_intf_pins $sc/M03_AXI] [get_bd_intf_pins $bram_ctrl/S_AXI]
        set clocked [list $sc/aclk $uart/s_axi_aclk $timer/s_axi_aclk $bram_ctrl/s_axi_aclk]
        set resets [list $sc/aresetn $uart/s_axi_aresetn $timer/s_axi_aresetn $bram_ctrl/s_axi_aresetn]
    } else {
        set ctrl [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect axi_ctrl_0]
        set_property -dict [list CONFIG.NUM_SI 1 CONFIG.NUM_MI 1] $ctrl
        connect_bd_intf_net $ctrl_master [get_bd_intf_pins $ctrl/S00_AXI]
        connect_bd_intf_net [get_bd_intf_pins $ctrl/M00_AXI] [get_bd_intf_pins $dma/S_AXI_LITE]
        set mem [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect axi_mem_0]
        set_property -dict [list CONFIG.NUM_SI 2 CONFIG.NUM_MI 1] $mem
        connect_bd_intf_net [get_bd_intf_pins $dma/M_AXI_MM2S] [get_bd_intf_pins $mem/S00_AXI]
        connect_bd_intf_net [get_bd_intf_pins $dma/M_AXI_S2MM] [get_bd_intf_pins $mem/S01_AXI]
        connect_bd_intf_net [get_bd_intf_pins $mem/M00_AXI] $mem_slave
        set clocked [list $ctrl/aclk $mem/aclk]
        set resets [list $ctrl/aresetn $mem/aresetn]
    }
    # One clock for the network, the DMA, the interconnects and the processor's AXI ports.
    set clock_pins [concat [list $nn/aclk $dma/s_axi_lite_aclk $dma/m_axi_mm2s_aclk $dma/m_axi_s2mm_aclk] $clocked $ps_clocks]
    connect_bd_net $clk {*}[get_bd_pins $clock_pins]
    connect_bd_net [get_bd_pins $rst/peripheral_aresetn] {*}[get_bd_pins [concat [list $nn/aresetn $dma/axi_resetn] $resets]]

    # -- addresses: those the software uses (rtlgen_net.h, driver/network.json) --
    assign_bd_address -offset $dma_base -range 64K -target_address_space [get_bd_addr_spaces $data_space] \
        [get_bd_addr_segs $dma/S_AXI_LITE/Reg] -force
    if {$processor eq "microblaze"} {
        assign_bd_address -offset $uart_base -range 64K -target_address_space [get_bd_addr_spaces $data_space] \
            [get_bd_addr_segs $uart/S_AXI/Reg] -force
        assign_bd_address -offset $timer_base -range 64K -target_address_space [get_bd_addr_spaces $data_space] \
            [get_bd_addr_segs $timer/S_AXI/Reg] -force
        foreach space [list $data_space $dma/Data_MM2S $dma/Data_S2MM] {
            assign_bd_address -offset $buffer_base -range $buffer_range -target_address_space [get_bd_addr_spaces $space] \
                [get_bd_addr_segs $bram_ctrl/S_AXI/Mem0] -force
        }
    }
    # Everything else (the DMA's view of DDR, the local memory) where Vivado puts it.
    assign_bd_address

    validate_bd_design
    save_bd_design
    rtlgen_note "block design $bd_name validated: AXI DMA MM2S $mm2s_width bits -> $ip_vlnv s_axis ($ip_in_width bits), m_axis ($ip_out_width bits) -> S2MM $s2mm_width bits, PL clock $clock_mhz MHz"
    if {$bd_only} {
        rtlgen_note "stopping after the block design (-bd-only)"
        exit 0
    }

    # -- wrapper, constraints, bitstream --
    set wrapper [make_wrapper -files [get_files $bd_name.bd] -top]
    add_files -norecurse $wrapper
    set_property top ${bd_name}_wrapper [current_fileset]
    if {$xdc ne ""} {
        add_files -fileset constrs_1 -norecurse [file join $here $xdc]
    }
    update_compile_order -fileset sources_1
    launch_runs impl_1 -to_step write_bitstream -jobs $jobs
    wait_on_run impl_1
} err]} {
    rtlgen_fail "Vivado stopped: [lindex [split $err \n] 0] (see [file join $proj_dir vivado.log] or the log in the Vivado console)"
}

# -- did it produce a bitstream? If not, say which run failed and where its log is. --
set impl_dir [get_property DIRECTORY [get_runs impl_1]]
set bit [file join $impl_dir ${bd_name}_wrapper.bit]
if {![file exists $bit]} {
    set failed impl_1
    set status [get_property STATUS [get_runs impl_1]]
    set synth_status [get_property STATUS [get_runs synth_1]]
    if {![string match "*Complete*" $synth_status]} {
        set failed synth_1
        set status $synth_status
    }
    set log [file join [get_property DIRECTORY [get_runs $failed]] runme.log]
    rtlgen_fail "no bitstream was produced ($failed: $status); see $log"
}
set wns [get_property STATS.WNS [get_runs impl_1]]
if {$wns ne "" && [string is double -strict $wns] && $wns < 0} {
    rtlgen_note "warning: timing not met at $clock_mhz MHz (worst negative slack $wns ns): results on the board may be wrong; rebuild with -clock [expr {int($clock_mhz * 0.8)}]"
}

# -- deploy/: what PYNQ (.bit + .hwh, same name) and Vitis (.xsa) need --
file mkdir $deploy_dir
set hwh ""
foreach dir [list $project_name.gen $project_name.srcs] {
    set f [file join $proj_dir $dir sources_1 bd $bd_name hw_handoff $bd_name.hwh]
    if {[file exists $f]} {
        set hwh $f
        break
    }
}
if {$hwh eq ""} {
    rtlgen_fail "the bitstream exists but no $bd_name.hwh was found under $proj_dir; see [file join $impl_dir runme.log]"
}
file copy -force $bit [file join $deploy_dir $overlay_name.bit]
file copy -force $hwh [file join $deploy_dir $overlay_name.hwh]
if {[catch {write_hw_platform -fixed -include_bit -force -file [file join $deploy_dir $overlay_name.xsa]} err]} {
    rtlgen_fail "write_hw_platform failed: [lindex [split $err \n] 0]"
}
rtlgen_note "wrote [file join $deploy_dir $overlay_name].bit, .hwh and .xsa"
